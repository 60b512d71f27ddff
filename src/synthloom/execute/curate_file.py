"""Curate any dataset, not only a run's: `synthloom curate DATA --stages FILE | --recipe RECIPE`.

The stages come from a recipe's `curation:` section or from a stages file
(see docs/curation.md); the output directory holds `curated.parquet`,
`rejected.parquet`, `curation.json` (the funnel, with example reasons) and,
for stages that ask a model, `cache.sqlite`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
    data: str | Path,
    out: str | Path,
    *,
    recipe: Recipe | str | Path | None = None,
    stages: str | Path | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
    split: str | None = None,
    progress: bool = True,
) -> CurationRun:
    """Curate any dataset (a file, a folder, a saved Hugging Face dataset, `hf:NAME`) into `out`.

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
    records, notes = read_data_records(data, text_field, label_field, split)
    context.text_field = text_field
    started = time.time()
    result = curate(records, specs, context)
    out.mkdir(parents=True, exist_ok=True)
    write_records(out / "curated.parquet", result.kept, label_field or "label", prompts=False)
    write_records(out / "rejected.parquet", result.dropped, label_field or "label", prompts=False)
    summary = {
        "data": str(data),
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


__all__ = ["CurationRun", "curate_data"]
