"""Curate any dataset, not only a run's: `synthloom curate DATA... --stages FILE | --recipe RECIPE`.

The stages come from a recipe's `curation:` section or from a stages file
(see docs/curation.md); the output directory holds `curated.parquet`,
`rejected.parquet`, `curation.json` (the funnel, with example reasons) and,
for stages that ask a model, `cache.sqlite`.

Several inputs are curated as one set: one run generates, another rewrites
the support, a third labels an unlabelled pool (one run makes one kind of
record), and `support_choice` over all of them picks which helps. Each
record keeps its `meta` (its origin); ids two inputs share get their
input's name in front, so every record stays traceable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .._version import versions
from ..curate import CurationContext, curate
from ..recipe import Recipe, load_curation_file, load_recipe
from ..records import Record, read_data_records, write_records
from .run import curation_context, write_json


@dataclass
class CurationRun:
    out: Path
    summary: dict[str, Any]
    kept: list[Record]
    dropped: list[Record]


def curate_data(
    data: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    recipe: Recipe | str | Path | None = None,
    stages: str | Path | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
    split: str | None = None,
    progress: bool = True,
) -> CurationRun:
    """Curate any dataset (a file, a folder, a saved Hugging Face dataset, `hf:NAME`, or several) into `out`.

    The stages come from a recipe's `curation:` section or from a stages file
    (see docs/curation.md). Writes `curated.parquet`, `rejected.parquet`,
    `curation.json` (the funnel, with example reasons) and, for stages that
    ask a model, `cache.sqlite`, so that running it again pays for nothing.
    """
    if (recipe is None) == (stages is None):
        raise ValueError("give either a recipe or a stages file")
    out = Path(out)
    if recipe is not None:
        if not isinstance(recipe, Recipe):
            recipe = load_recipe(recipe)
        specs = list(recipe.curation)
        context = curation_context(recipe, out / "cache.sqlite", progress)
        source = {"recipe": recipe.name}
    else:
        spec_file = load_curation_file(stages)
        specs = list(spec_file.curation)
        context = CurationContext(
            text_field=spec_file.text_field,
            label_field=spec_file.label_field or "label",
            labels=list(spec_file.labels or []),
            description=spec_file.description,
            cache_path=out / "cache.sqlite",
            progress=progress,
        )
        source = {"stages_file": str(stages)}
    text_field = text_field or context.text_field
    label_field = label_field if label_field is not None else context.label_field
    sources = [data] if isinstance(data, (str, Path)) else list(data)
    if not sources:
        raise ValueError("no data to curate")
    records, notes = read_inputs(sources, text_field, label_field, split)
    context.text_field = text_field
    started = time.time()
    result = curate(records, specs, context)
    out.mkdir(parents=True, exist_ok=True)
    write_records(out / "curated.parquet", result.kept, label_field or "label", prompts=False)
    write_records(out / "rejected.parquet", result.dropped, label_field or "label", prompts=False)
    summary = {
        "data": str(sources[0]) if len(sources) == 1 else [str(x) for x in sources],
        **source,
        "stages": [spec.model_dump(mode="json") for spec in specs],
        "counts": {"records": len(records), "curated": len(result.kept), "rejected": len(result.dropped)},
        "curation": {"funnel": [step.to_json() for step in result.funnel]},
        "notes": notes,
        "seconds": round(time.time() - started, 3),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    write_json(out / "curation.json", summary, Path.cwd())  # paths relative to where the command ran
    return CurationRun(out, summary, result.kept, result.dropped)


def input_name(source: str | Path) -> str:
    """What an input is called in front of its ids: its run folder for a run's `curated.parquet`, else its file stem."""
    path = Path(str(source))
    if path.name in ("curated.parquet", "generated.parquet") and path.parent.name:
        return path.parent.name
    return path.stem or str(source)


def read_inputs(sources: Sequence[str | Path], text_field: str, label_field: str | None,
                split: str | None) -> tuple[list[Record], list[str]]:
    """The records of every input, in order; ids that more than one input uses get `name:` in front."""
    parts = [read_data_records(source, text_field, label_field, split) for source in sources]
    records = [r for part, _ in parts for r in part]
    notes = [n for _, part_notes in parts for n in part_notes]
    if len(sources) > 1:
        owners: dict[str, set[int]] = {}
        for i, (part, _) in enumerate(parts):
            for r in part:
                owners.setdefault(r.id, set()).add(i)
        names = [input_name(source) for source in sources]
        if len(set(names)) < len(names):
            names = [f"{name}{i + 1}" for i, name in enumerate(names)]
        shared = 0
        for i, (part, _) in enumerate(parts):
            for r in part:
                if len(owners[r.id]) > 1:
                    r.id, shared = f"{names[i]}:{r.id}", shared + 1
        if shared:
            notes.append(f"{shared} records had an id another input also uses: their ids now start with the input's name")
    return records, notes


__all__ = ["CurationRun", "curate_data"]
