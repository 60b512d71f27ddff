"""Execute a recipe into a run directory: generate, curate, evaluate, report.

    result = synthloom.run("examples/sms_spam.yaml", out="runs/sms")

The run directory holds everything a run made: `manifest.json`,
`generated.parquet`, `curated.parquet` (kept records), `rejected.parquet`
(dropped ones, with reasons), `metrics.json`, `plots.json` (the report's
plot data), `report.html`, `README.md` (the dataset card) and
`cache.sqlite`. The cache is the run's journal: each answer is committed as
it arrives, so running the same recipe into the same directory again, after
success, Ctrl-C or `kill -9`, pays only for what was never answered.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .aio import run_async
from .curate import CurationContext, curate
from .evaluate import EvaluationContext, evaluate
from .generate import Generator, load_support
from .llm import Backend, CompletionCache, RunAborted, Scheduler, create_backend
from .progress import RecordProgress
from .recipe import Recipe, load_recipe
from .records import Record, atomic_write_text, write_records
from .report import build_card, build_report


@dataclass
class RunResult:
    out: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    curated: list[Record] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out / "report.html"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"synthloom": __version__, "python": platform.python_version()}
    for name in ("llama-cpp-python", "aiohttp", "pyarrow", "pydantic", "scikit-learn", "sentence-transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def run(
    recipe: Recipe | str | Path,
    out: str | Path,
    *,
    limit: int | None = None,
    progress: bool = True,
    backend: Backend | None = None,
) -> RunResult:
    """Run a recipe (a `Recipe` or a YAML path) into the directory `out`."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    manifest: dict[str, Any] = {
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe.model_dump(mode="json"),
        "model": recipe.model.model_dump(mode="json"),
        "versions": _versions(),
        "limit": limit,
        "counts": {},
        "timings": {},
        "notes": [],
    }
    _write_json(out / "manifest.json", manifest)

    backend = backend or create_backend(recipe.model)
    cache = CompletionCache(out / "cache.sqlite")
    support = load_support(recipe)
    generator = Generator(recipe, support)
    total = generator.count(limit)
    bar = RecordProgress(total, enabled=progress)
    scheduler = Scheduler(backend, cache)
    manifest["counts"]["planned"] = total
    manifest["counts"]["support"] = len(support)
    if recipe.demonstrations is not None and not recipe.demonstrations.exists:
        manifest["notes"].append(f"no demonstrations: {recipe.demonstrations.path} not found")

    def finish(status: str) -> None:
        result = generator.last_result
        manifest["status"] = status
        manifest["counts"].update(generated=len(result.records), failed=len(result.failures))
        manifest["model_calls"] = scheduler.stats.to_json()
        manifest["failures"] = {
            "examples_by_kind": scheduler.failure_examples(),
            "records": result.failures[:50],
        }
        manifest["timings"]["total_s"] = round(time.time() - started, 3)
        manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_json(out / "manifest.json", manifest)

    async def generate() -> None:
        try:
            await generator.run(scheduler, generator.iter_plans(limit), total, on_record=bar.advance)
        finally:
            await backend.aclose()

    t0 = time.time()
    try:
        with bar:
            bar.watch(scheduler.stats)
            run_async(generate())
    except (KeyboardInterrupt, RunAborted) as exc:
        write_records(out / "generated.parquet", generator.last_result.records, recipe.task.label_field)
        manifest["timings"]["generate_s"] = round(time.time() - t0, 3)
        finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        cache.close()
        raise
    manifest["timings"]["generate_s"] = round(time.time() - t0, 3)
    cache.close()
    generated = generator.last_result.records
    write_records(out / "generated.parquet", generated, recipe.task.label_field)

    t0 = time.time()
    curation = curate(
        generated, recipe.curation, CurationContext(recipe.text_field, recipe.task.label_field)
    )
    write_records(out / "curated.parquet", curation.kept, recipe.task.label_field, prompts=False)
    write_records(out / "rejected.parquet", curation.dropped, recipe.task.label_field, prompts=False)
    manifest["curation"] = {"funnel": [step.to_json() for step in curation.funnel]}
    manifest["counts"].update(curated=len(curation.kept), rejected=len(curation.dropped))
    manifest["timings"]["curate_s"] = round(time.time() - t0, 3)

    t0 = time.time()
    context = EvaluationContext(
        text_field=recipe.text_field, task=recipe.task, conditions=recipe.conditions,
        model=recipe.model, run_dir=out, progress=progress,
    )
    metrics = evaluate(curation.kept, recipe.evaluation, context)
    manifest["notes"].extend(context.notes)
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "plots.json", context.plots)
    manifest["timings"]["evaluate_s"] = round(time.time() - t0, 3)

    finish("complete")
    t0 = time.time()
    build_report(out, curated=curation.kept, rejected=curation.dropped)
    build_card(out, curated=curation.kept)
    manifest["timings"]["report_s"] = round(time.time() - t0, 3)
    manifest["timings"]["total_s"] = round(time.time() - started, 3)
    _write_json(out / "manifest.json", manifest)
    return RunResult(out, manifest, metrics, curation.kept)
