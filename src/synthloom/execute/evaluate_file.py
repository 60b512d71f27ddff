"""Evaluate any dataset file, not only a run's: `synthloom evaluate DATA [--reference REAL]`.

The output directory has the layout of a run directory, so that
`synthloom report DIR` works on it too: `manifest.json`, `curated.parquet`
(the records evaluated), `metrics.json`, `plots.json`, `report.html`,
`README.md` (the dataset card) and, when a judge was asked, `cache.sqlite`.

Measured: diversity always; with a reference (real data), fidelity against
it and, when both are labelled, a classifier trained on the data and
tested on the reference; with `judge_sample`, faithfulness by a judge;
with `benchmark` (a QA or generative one), the records as worked examples
for a model answering its test questions, against zero-shot.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from pydantic import ValidationError

from .._version import versions
from ..evaluate import EvaluationContext, evaluate
from ..llm import BackendConfig
from ..recipe import AnsweringSpec, DatasetSpec, DiversitySpec, DownstreamSpec, FaithfulnessSpec, FidelitySpec
from ..recipe.loader import validation_message
from ..records import DataError, read_records, write_records
from ..report import build_card, build_report
from .answer_checks import check_answers
from .run import write_json


def evaluate_file(
    data: str | Path,
    out: str | Path | None = None,
    *,
    reference: str | Path | None = None,
    reference_columns: Sequence[str] | None = None,
    reference_text_field: str | None = None,
    reference_label_field: str = "label",
    text_field: str | None = None,
    label_field: str | None = None,
    trainer: str = "embedding_logreg",
    judge_sample: int = 0,
    judge: BackendConfig | None = None,
    task: str | None = None,
    benchmark: str | None = None,
    benchmark_path: str | Path | None = None,
    shots: int = 3,
    n: int = 50,
    answer_field: str = "answer",
    progress: bool = False,
) -> Path:
    """Evaluate the records of `data` into `out` (default: `<data stem>-evaluation` beside it)."""
    data = Path(data)
    if not data.exists():
        raise DataError(f"{data}: file not found")
    out = Path(out) if out is not None else data.parent / f"{data.stem}-evaluation"
    started = time.time()
    records = read_records(data, text_field, label_field)
    if not records:
        raise DataError(f"{data}: no rows")
    field = text_field or next(iter(records[0].fields))
    labelled = any(r.label is not None for r in records)
    specs: list[Any] = [DiversitySpec()]
    if reference is not None:
        ref = DatasetSpec.model_validate(
            {"path": str(reference), "columns": list(reference_columns) if reference_columns else None,
             "text_field": reference_text_field or field, "label_field": reference_label_field if labelled else None},
            context={"base_dir": str(Path.cwd())},
        )
        specs.append(FidelitySpec(reference=ref))
        if labelled:
            specs.append(DownstreamSpec(test=ref, trainer=trainer))
    if judge_sample:
        specs.append(FaithfulnessSpec(sample=judge_sample, judge=judge))
    if benchmark is not None:
        specs.append(answering_spec(benchmark, benchmark_path, shots=shots, n=n, answer_field=answer_field))
    out.mkdir(parents=True, exist_ok=True)
    context = EvaluationContext(text_field=field, run_dir=out, progress=progress, model=judge, answer_check=check_answers)
    if task:
        from ..recipe import TaskSpec

        labels = sorted({r.label for r in records if r.label is not None})
        context.task = TaskSpec(description=task, fields={field: field}, labels=labels if len(labels) >= 2 else None)
    metrics = evaluate(records, specs, context)
    write_records(out / "curated.parquet", records, label_field or "label", prompts=False)
    manifest = {
        "kind": "evaluate",
        "source": str(data),
        "reference": str(reference) if reference is not None else None,
        "status": "complete",
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "recipe": {"name": data.stem, "task": {"description": task or f"the records of {data.name}"}},
        "versions": versions(),
        "counts": {"records": len(records)},
        "notes": context.notes,
        "timings": {"total_s": round(time.time() - started, 3)},
    }
    # Paths in what is written are relative to the working directory the command was given in.
    base = Path.cwd()
    write_json(out / "manifest.json", manifest, base)
    write_json(out / "metrics.json", metrics, base)
    write_json(out / "plots.json", context.plots, base)
    build_report(out, curated=records, rejected=[])
    build_card(out, curated=records)
    return out


def answering_spec(benchmark: str, path: str | Path | None = None, **settings: Any) -> AnsweringSpec:
    """The `answering` stage for a benchmark name; a bad name or kind is a one-line DataError."""
    try:
        return AnsweringSpec.model_validate(
            {"benchmark": {"name": benchmark, "path": str(path) if path is not None else None}, **settings},
            context={"base_dir": str(Path.cwd())},
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise DataError(f"answering {benchmark}: {where}: {validation_message(error)}") from None


__all__ = ["answering_spec", "evaluate_file"]
