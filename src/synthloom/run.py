"""Execute a recipe into a run directory: generate, curate, evaluate, report.

    result = synthloom.run("examples/sms_spam.yaml", out="runs/sms")

The run directory holds everything a run made: `manifest.json`,
`generated.parquet`, `curated.parquet` (kept records), `rejected.parquet`
(dropped ones, with reasons), `metrics.json`, `report.html` and
`cache.sqlite`. The cache is the run's journal: each answer is committed as
it arrives, so running the same recipe into the same directory again, after
success, Ctrl-C or `kill -9`, pays only for what was never answered.

Where the work happens is the executor's business: `LocalExecutor` (the
default) generates in this process through one scheduler;
`synthloom.distributed.RayExecutor` spreads the same plans over a Ray
cluster. Both fill the same run directory from the same recipe.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from . import __version__
from .aio import run_async
from .curate import CurationContext, CurationResult, curate
from .evaluate import EvaluationContext, evaluate
from .generate import Generator, load_support
from .generate.engine import PlannedRecord
from .llm import Backend, CompletionCache, RunAborted, Scheduler, create_backend
from .progress import RecordProgress
from .recipe import Recipe, load_recipe
from .records import Record, atomic_write_text, write_records
from .report import build_report


@dataclass
class Generated:
    """What generation produced, however it ran: records, failures and the model calls."""

    records: list[Record] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    model_calls: dict[str, Any] = field(default_factory=dict)
    failure_examples: dict[str, str] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=lambda: {"name": "local"})

    @classmethod
    def of(cls, generator: Generator, scheduler: Scheduler) -> Generated:
        """What `generator` has finished so far, with `scheduler`'s counts."""
        result = generator.last_result
        return cls(result.records, result.failures, scheduler.stats.to_json(), scheduler.failure_examples())


def generate_plans(scheduler: Scheduler, generator: Generator, plans: Iterable[PlannedRecord], total: int,
                   on_record: Callable[[Record | None], None] | None = None) -> None:
    """Send `plans` through `scheduler`, then close its backend; records land in `generator.last_result`."""

    async def generate() -> None:
        try:
            await generator.run(scheduler, plans, total, on_record=on_record)
        finally:
            await scheduler.backend.aclose()

    run_async(generate())


class Executor(Protocol):
    """Where a run's work happens. `generated` holds what finished, even after an interruption."""

    generated: Generated

    def generate(self, recipe: Recipe, generator: Generator, out: Path, limit: int | None, bar: RecordProgress) -> Generated: ...

    def curate(self, records: Sequence[Record], recipe: Recipe, context: CurationContext) -> CurationResult: ...

    def evaluation_context(self, recipe: Recipe, kept: Sequence[Record]) -> EvaluationContext: ...


class LocalExecutor:
    """Everything in this process: one backend, one scheduler, the run's cache file."""

    def __init__(self, backend: Backend | None = None):
        self.backend = backend
        self.generated = Generated()

    def generate(self, recipe: Recipe, generator: Generator, out: Path, limit: int | None, bar: RecordProgress) -> Generated:
        backend = self.backend or create_backend(recipe.model)
        cache = CompletionCache(out / "cache.sqlite")
        scheduler = Scheduler(backend, cache)
        bar.watch(scheduler.stats)
        try:
            generate_plans(scheduler, generator, generator.iter_plans(limit), generator.count(limit), bar.advance)
        finally:
            cache.close()
            self.generated = Generated.of(generator, scheduler)
        return self.generated

    def curate(self, records: Sequence[Record], recipe: Recipe, context: CurationContext) -> CurationResult:
        return curate(records, recipe.curation, context)

    def evaluation_context(self, recipe: Recipe, kept: Sequence[Record]) -> EvaluationContext:
        return EvaluationContext(text_field=recipe.text_field)


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
    executor: Executor | None = None,
) -> RunResult:
    """Run a recipe (a `Recipe` or a YAML path) into the directory `out`.

    `executor` says where the work happens (default: this process).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    executor = executor or LocalExecutor(backend)
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

    support = load_support(recipe)
    generator = Generator(recipe, support)
    total = generator.count(limit)
    bar = RecordProgress(total, enabled=progress)
    manifest["counts"]["planned"] = total
    manifest["counts"]["support"] = len(support)
    if recipe.demonstrations is not None and not recipe.demonstrations.exists:
        manifest["notes"].append(f"no demonstrations: {recipe.demonstrations.path} not found")

    def finish(status: str, result: Generated) -> None:
        manifest["status"] = status
        manifest["counts"].update(generated=len(result.records), failed=len(result.failures))
        manifest["executor"] = result.executor
        manifest["model_calls"] = result.model_calls
        manifest["failures"] = {
            "examples_by_kind": result.failure_examples,
            "records": result.failures[:50],
        }
        manifest["timings"]["total_s"] = round(time.time() - started, 3)
        manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_json(out / "manifest.json", manifest)

    t0 = time.time()
    try:
        with bar:
            generated = executor.generate(recipe, generator, out, limit, bar)
    except (KeyboardInterrupt, RunAborted, OSError) as exc:
        manifest["timings"]["generate_s"] = round(time.time() - t0, 3)
        try:
            write_records(out / "generated.parquet", executor.generated.records, recipe.task.label_field)
            finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", executor.generated)
        except OSError:
            pass  # e.g. the disk is full: every file keeps its last complete version
        raise
    manifest["timings"]["generate_s"] = round(time.time() - t0, 3)
    write_records(out / "generated.parquet", generated.records, recipe.task.label_field)

    t0 = time.time()
    curation = executor.curate(
        generated.records, recipe, CurationContext(recipe.text_field, recipe.task.label_field)
    )
    write_records(out / "curated.parquet", curation.kept, recipe.task.label_field, prompts=False)
    write_records(out / "rejected.parquet", curation.dropped, recipe.task.label_field, prompts=False)
    manifest["curation"] = {"funnel": [step.to_json() for step in curation.funnel]}
    manifest["counts"].update(curated=len(curation.kept), rejected=len(curation.dropped))
    manifest["timings"]["curate_s"] = round(time.time() - t0, 3)

    t0 = time.time()
    context = executor.evaluation_context(recipe, curation.kept)
    metrics = evaluate(curation.kept, recipe.evaluation, context)
    manifest["notes"].extend(context.notes)
    _write_json(out / "metrics.json", metrics)
    manifest["timings"]["evaluate_s"] = round(time.time() - t0, 3)

    finish("complete", generated)
    t0 = time.time()
    build_report(out, curated=curation.kept, rejected=curation.dropped)
    manifest["timings"]["report_s"] = round(time.time() - t0, 3)
    manifest["timings"]["total_s"] = round(time.time() - started, 3)
    _write_json(out / "manifest.json", manifest)
    return RunResult(out, manifest, metrics, curation.kept)
