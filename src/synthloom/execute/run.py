"""Execute a recipe into a run directory: generate, curate, evaluate, report.

    result = synthloom.run("examples/sms_spam.yaml", out="runs/sms")

The run directory holds everything a run made: `manifest.json`,
`generated.parquet`, `curated.parquet` (kept records), `rejected.parquet`
(dropped ones, with reasons), `metrics.json`, `plots.json` (the report's
plot data), `report.html`, `README.md` (the dataset card) and
`cache.sqlite`. The cache is the run's journal: each answer is on disk as
it arrives (see `llm/cache.py`), so running the same recipe into the same directory again, after
success, Ctrl-C or `kill -9`, pays only for what was never answered.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, Sequence, Union

from .._version import versions
from ..curate import CurationContext, CurationResult, curate
from ..evaluate import EvaluationContext, evaluate, plot_data
from ..generate import Generator, load_support
from ..generate.annotate import Annotator
from ..generate.augment import Augmenter
from ..generate.grounded import GroundedGenerator
from ..generate.tool_use import ToolUseGenerator
from ..llm import Backend, RunAborted, Session
from ..llm.batch_ledger import BatchLedger
from ..llm.pricing import currency_of
from ..llm.spend import BudgetExceeded, Ledger, spending
from ..progress import RecordProgress
from ..recipe import Recipe, load_recipe
from ..records import Record, atomic_write_text, read_records, write_records
from ..report import build_card, build_report
from .answer_checks import check_answers
from .portable import portable
from ..report.grounded import grounded_summary, messages_rows, ragas_rows
from .rounds import Rounds, downstream_error_rates
from .validation import loop_data


@dataclass
class Generated:
    """What generation produced, however it ran: records, failures and the model calls."""

    records: list[Record] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    model_calls: dict[str, Any] = field(default_factory=dict)
    failure_examples: dict[str, str] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=lambda: {"name": "local"})
    generation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, producer: Producer, session: Session) -> Generated:
        """What `producer` has finished so far, with the counts of `session`'s scheduler."""
        result = producer.last_result
        return cls(result.records, result.failures, session.stats.to_json(), session.failure_examples(),
                   generation=producer.summary())


Producer = Union[Generator, Rounds, Annotator, Augmenter]


def make_producer(recipe: Recipe, support: list[Record]) -> Producer:
    """What makes the records: annotation of inputs, rewrites of real examples, rounds of generation, or one pass."""
    if recipe.annotation is not None:
        return Annotator(recipe, support)
    if recipe.augmentation is not None:
        return Augmenter(recipe, support)
    if recipe.documents is not None:
        return GroundedGenerator(recipe, support)
    if recipe.tools is not None:
        return ToolUseGenerator(recipe, support)
    if recipe.rounds is None:
        return Generator(recipe, support)
    loop = loop_data(recipe, support)  # the loop's validation records are not shown as demonstrations
    return Rounds(recipe, Generator(recipe, loop.demonstrations), downstream_error_rates(recipe, loop), loop)


class Executor(Protocol):
    """Where a run's work happens. `generated` holds what finished, even after an interruption."""

    generated: Generated

    def generate(self, recipe: Recipe, producer: Producer, out: Path, limit: int | None, bar: RecordProgress) -> Generated: ...

    def curate(self, records: Sequence[Record], recipe: Recipe, context: CurationContext) -> CurationResult: ...

    def prepare_evaluation(self, context: EvaluationContext, recipe: Recipe, kept: Sequence[Record]) -> None: ...


class LocalExecutor:
    """Everything in this process: one backend, one scheduler, the run's cache file."""

    def __init__(self, backend: Backend | None = None):
        self.backend = backend
        self.generated = Generated()

    def generate(self, recipe: Recipe, producer: Producer, out: Path, limit: int | None, bar: RecordProgress) -> Generated:
        session = Session(self.backend or recipe.model, out / "cache.sqlite", bar=bar)
        try:
            session.run(lambda scheduler: producer.produce(scheduler, limit, on_record=bar.advance, out=out))
        finally:
            self.generated = Generated.of(producer, session)
        return self.generated

    def curate(self, records: Sequence[Record], recipe: Recipe, context: CurationContext) -> CurationResult:
        return curate(records, recipe.curation, context, check=False)  # a bad record is dropped with its reason

    def prepare_evaluation(self, context: EvaluationContext, recipe: Recipe, kept: Sequence[Record]) -> None:
        """Nothing to do ahead: stages compute what they need in this process."""


@dataclass
class RunResult:
    out: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    curated: list[Record] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out / "report.html"


def write_json(path: Path, data: Any, base: Path | None = None) -> None:
    """`data` as indented JSON, written atomically (a reader sees the old file or the new one).

    With `base`, absolute paths in its strings are written relative to it (see `portable`)."""
    if base is not None:
        data = portable(json.loads(json.dumps(data, default=str)), base)
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def curation_context(recipe: Recipe, cache_path: Path | None, progress: bool = False) -> CurationContext:
    """What curation stages know of a recipe's task: fields, labels, descriptions, the run's cache."""
    task = recipe.task
    extras: dict[str, Any] = {}
    chunks = cache_path.parent / "chunks.parquet" if cache_path is not None else None
    if recipe.tools is not None:
        extras["tools"] = recipe.tools  # what tool_execution runs the calls with
    if recipe.documents is not None and chunks is not None and chunks.exists():
        extras["chunks"] = read_records(chunks)  # what the grounding stages rank questions among
    return CurationContext(
        text_field=recipe.text_field,
        label_field=task.label_field,
        labels=task.label_names,
        label_descriptions={label: task.label_description(label) or "" for label in task.label_names},
        description=task.description,
        cache_path=cache_path,
        progress=progress,
        support=recipe.demonstrations,
        label_shares=dict(task.label_weights or {}),
        extras=extras,
    )


def write_grounded(out: Path, curation: CurationResult, manifest: dict[str, Any]) -> None:
    """A run over documents: coverage, question mix, retrieval and grounding figures; the Ragas and messages exports."""
    summary = grounded_summary(curation.kept, list(curation.kept) + list(curation.dropped),
                               read_records(out / "chunks.parquet"), manifest["curation"]["funnel"])
    write_json(out / "documents.json", summary)
    manifest["documents"] = {k: v for k, v in summary.items() if k != "coverage"}
    manifest["documents"]["coverage"] = {k: v for k, v in summary["coverage"].items() if k != "documents"}
    for name, rows in (("ragas.jsonl", ragas_rows(curation.kept)), ("messages.jsonl", messages_rows(curation.kept))):
        atomic_write_text(out / name, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _status(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "stopped" if isinstance(exc, BudgetExceeded) else "failed"


def spend_summary(ledger: Ledger, counts: dict[str, Any]) -> dict[str, Any]:
    """The ledger's figures, with the cost per kept record and what curation threw away.

    What curation threw away is the generation's money in the share of
    generated records it dropped (records of one run cost about the same)."""
    data = ledger.to_json()
    generation = data["stages"].get("generation", {}).get("money")
    total = data["total"]["money"]
    kept, generated = counts.get("curated"), counts.get("generated")
    if total is not None and kept:
        data["money_per_kept_record"] = round(total / kept, 6)
    if generation is not None and generated and kept is not None:
        data["money_dropped_by_curation"] = round(generation * (generated - kept) / generated, 6)
    return data


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
    base = recipe.base_dir  # paths in what the run writes are relative to the recipe's folder
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    manifest: dict[str, Any] = {
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe.model_dump(mode="json"),
        "model": recipe.model.model_dump(mode="json"),
        "versions": versions(),
        "limit": limit,
        "counts": {},
        "timings": {},
        "notes": [],
    }
    write_json(out / "manifest.json", manifest, base)
    ledger = Ledger(recipe.model.budget, currency_of(recipe.model))

    support = load_support(recipe)
    producer = make_producer(recipe, support)
    total = producer.count(limit)
    bar = RecordProgress(total, enabled=progress)
    bar.show_spend(lambda done: ledger.progress_text(done, total))
    manifest["counts"]["planned"] = total
    manifest["counts"]["support"] = len(support)
    if recipe.demonstrations is not None and not recipe.demonstrations.exists:
        manifest["notes"].append(f"no demonstrations: {recipe.demonstrations.path} not found")
    if isinstance(producer, Rounds) and producer.loop is not None:
        if producer.loop.reason:
            manifest["notes"].append(producer.loop.reason)
        manifest["counts"]["loop_validation"] = len(producer.loop.validation)

    def finish(status: str, result: Generated) -> None:
        manifest["status"] = status
        manifest["counts"].update(generated=len(result.records), failed=len(result.failures))
        manifest["executor"] = result.executor
        manifest["model_calls"] = result.model_calls
        manifest["generation"] = result.generation
        manifest["failures"] = {
            "examples_by_kind": result.failure_examples,
            "records": result.failures[:50],
        }
        manifest["spend"] = spend_summary(ledger, manifest["counts"])
        if (out / "batches.sqlite").exists():  # model.mode: batch: the provider batches and their lines
            batches = BatchLedger(out / "batches.sqlite")
            try:
                manifest["batches"] = batches.counts()
            finally:
                batches.close()
        manifest["timings"]["total_s"] = round(time.time() - started, 3)
        manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(out / "manifest.json", manifest, base)

    t0 = time.time()
    try:
        with bar, spending(ledger, "generation"):
            generated = executor.generate(recipe, producer, out, limit, bar)
    except (KeyboardInterrupt, RunAborted, OSError) as exc:
        manifest["timings"]["generate_s"] = round(time.time() - t0, 3)
        try:
            write_records(out / "generated.parquet", executor.generated.records, recipe.task.label_field)
            finish(_status(exc), executor.generated)
        except OSError:
            pass  # e.g. the disk is full: every file keeps its last complete version
        raise
    manifest["timings"]["generate_s"] = round(time.time() - t0, 3)
    write_records(out / "generated.parquet", generated.records, recipe.task.label_field)

    t0 = time.time()
    try:
        with spending(ledger, "curation"):
            curation = executor.curate(generated.records, recipe, curation_context(recipe, out / "cache.sqlite", progress))
    except BudgetExceeded:
        finish("stopped", generated)
        raise
    write_records(out / "curated.parquet", curation.kept, recipe.task.label_field, prompts=False)
    write_records(out / "rejected.parquet", curation.dropped, recipe.task.label_field, prompts=False)
    manifest["curation"] = {"funnel": [step.to_json() for step in curation.funnel]}
    manifest["counts"].update(curated=len(curation.kept), rejected=len(curation.dropped))
    manifest["timings"]["curate_s"] = round(time.time() - t0, 3)
    if recipe.documents is not None and (out / "chunks.parquet").exists():
        write_grounded(out, curation, manifest)

    t0 = time.time()
    context = EvaluationContext(
        text_field=recipe.text_field, task=recipe.task, conditions=recipe.conditions,
        model=recipe.model, run_dir=out, progress=progress, answer_check=check_answers,
        support=[r for r in support if r.label is not None] if recipe.annotation is None else None,
    )
    executor.prepare_evaluation(context, recipe, curation.kept)
    metrics: dict[str, Any] = {}

    def report(status: str) -> None:
        manifest["notes"].extend(context.notes)
        write_json(out / "metrics.json", metrics, base)
        write_json(out / "plots.json", context.plots, base)
        manifest["timings"]["evaluate_s"] = round(time.time() - t0, 3)
        finish(status, generated)
        t_report = time.time()
        build_report(out, curated=curation.kept, rejected=curation.dropped)
        build_card(out, curated=curation.kept)
        manifest["timings"]["report_s"] = round(time.time() - t_report, 3)
        manifest["timings"]["total_s"] = round(time.time() - started, 3)
        write_json(out / "manifest.json", manifest, base)

    try:
        with spending(ledger, "evaluation"):
            evaluate(curation.kept, recipe.evaluation, context, metrics=metrics)
    except BudgetExceeded as exc:
        # The data is curated and on disk: report it with the figures of the stages that finished.
        missing = [spec.stage for spec in recipe.evaluation][len(metrics):]
        context.notes.append(f"evaluation stopped at {exc.stage} by the budget ({exc.cap}): no figures for "
                             f"{', '.join(missing)}; raise the budget and run again to finish (answers paid for are replayed)")
        context.plots = plot_data(curation.kept, context)
        report("stopped")
        raise
    report("complete")
    return RunResult(out, portable(manifest, base), portable(metrics, base), curation.kept)


__all__ = ["Executor", "Generated", "LocalExecutor", "Producer", "RunResult", "curation_context", "make_producer", "run", "write_json"]
