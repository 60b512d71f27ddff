"""The same run on a Ray cluster: `synthloom run RECIPE --executor ray [--address ADDR]`.

What runs where:

- The driver (the process that runs `synthloom run`) plans every record
  exactly as a local run does (a plan is a pure function of the seed and the
  record's index), cuts the plans into contiguous shards and hands each
  shard to a Ray task. The producer's own loop stays on the driver: for
  dataset-wise rounds, each round's plans are sharded and waited for, and
  the allocation between rounds, the round's curation and the Self-Instruct
  pool run on the driver, as locally; annotation's plans (an input and its
  demonstrations) are sharded like generation's, and each shard rebuilds the
  labelling chain from the recipe. A tool-use shard starts its own tools
  (Python tools in the sandbox, MCP servers) on its node and stops them.
- Each shard task builds its own backend and scheduler: its own connection
  pool, its share of `model.concurrency` (the recipe's concurrency is the
  whole cluster's, so servers see the same load as from a local run) and its
  own rotation of the `base_url` list, so shards spread over replicas.
- Answers go to an answer store: a Ray actor pinned to the driver's node
  that owns the run's `cache.sqlite`, the very file a local run writes. A
  shard sends each answer as soon as its event loop has a moment (answers
  that arrive together travel in one message) and the store commits it at
  once. Each answer's spend travels with it (the manifest's cost is the
  whole run's); with a `model.budget` the store adds the driver's spend,
  checks the caps and answers saves with the stop (`StoreLedger`).
- The driver puts the shards' records together in plan order and curates
  them: a stage whose decision reads only its own record (`record_local =
  True`) runs over Ray Data blocks; a stage with a global step exposes its
  per-record part as `features(records)` (run over Ray Data, e.g. MinHash
  signatures or embeddings) and its global part as `decide(records,
  features)` (run on the driver over the whole dataset, e.g. LSH banding);
  any other stage runs on the driver. When evaluation needs sentence
  embeddings, the curated texts are embedded over Ray Data as well.

Why a driver-side store rather than one cache file per shard: it needs no
storage shared between nodes, it leaves one cache in the run directory that
a local run resumes from (and the other way round), and a shard that runs
again — because its worker died, or because the whole run is resumed —
first asks the store for the answers it already paid for. What a dead worker
loses is only the requests it had in flight.

Same seed, same recipe: the same requests, the same answers, the records in
the same order and the same stages over the same list, so the same curated
data as the local executor.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..curate import CurationContext, CurationResult, build_stage, run_stages
from ..evaluate import EvaluationContext
from ..generate import GenerationResult, Generator
from ..generate.grounded import GroundedGenerator
from ..generate.tool_use import ToolUseGenerator
from ..generate.annotate import Annotator
from ..generate.engine import AnswerCounts, PlannedRecord
from ..llm import Request, RunAborted, Scheduler, Session, create_backend
from ..llm.pricing import currency_of
from ..llm.spend import BudgetExceeded, spending
from ..llm.spend import active as spend_here
from ..progress import RecordProgress
from ..recipe import Recipe
from ..records import Record
from .answer_store import AnswerStore, StoreCache, StoreLedger
from .ray_data import RayStage, embed_texts, map_blocks
from .rounds import Rounds
from .run import Generated, Producer

__all__ = ["ClusterError", "EMBEDDING_STAGES", "RayExecutor", "shard_ranges"]

# Evaluation stages that embed the curated texts; their embeddings are
# computed over Ray Data first. A new stage that embeds joins this set.
EMBEDDING_STAGES = {"downstream"}


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached or used."""


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """Fail at once when nothing listens at a HOST:PORT address (Ray itself retries for minutes)."""
    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from None


def shard_ranges(total: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of record indices, as even as they can be."""
    shards = max(1, min(shards, total))
    size, extra = divmod(total, shards)
    ranges, start = [], 0
    for i in range(shards):
        stop = start + size + (i < extra)
        ranges.append((start, stop))
        start = stop
    return [r for r in ranges if r[1] > r[0]]


def _shard_config(config: Any, running: int, offset: int) -> Any:
    """One shard's backend settings: its share of the cluster's concurrency and rate, its turn of the URLs."""
    update: dict[str, Any] = {"concurrency": max(1, -(-config.concurrency // running))}
    if config.requests_per_minute:
        update["requests_per_minute"] = config.requests_per_minute / running
    urls = getattr(config, "base_url", None)
    if isinstance(urls, list) and len(urls) > 1:
        k = offset % len(urls)
        update["base_url"] = urls[k:] + urls[:k]
    return config.model_copy(update=update)


def _shard_worker(recipe: Recipe) -> Generator | Annotator:
    """What runs a shard's plans, rebuilt from the recipe alone: the generation or the labelling chain."""
    if recipe.documents is not None:  # runs grounded plans; needs no documents (the plans carry their chunks)
        return GroundedGenerator(recipe)
    if recipe.tools is not None:  # its tools are started in the shard (_run_plans)
        return ToolUseGenerator(recipe)
    return Annotator(recipe) if recipe.annotation is not None else Generator(recipe)


async def _run_plans(worker: Generator | Annotator, scheduler: Scheduler, plans: list[PlannedRecord],
                     on_record: Callable[[Record | None], None]) -> GenerationResult:
    """Run the plans; a tool-use shard starts its own tools on its node first (sandbox, MCP servers), as locally."""
    if not isinstance(worker, ToolUseGenerator):
        return await worker.run(scheduler, plans, len(plans), on_record=on_record)
    from ..tools import ToolRunner

    async with ToolRunner(worker.recipe.tools) as tools:  # type: ignore[arg-type]
        worker.toolset = tools.toolset
        worker.tool_chain.runner = tools
        return await worker.run(scheduler, plans, len(plans), on_record=on_record)


def _known_requests(worker: Generator | Annotator, plans: Sequence[PlannedRecord]) -> Iterator[Request]:
    """The requests these plans make whatever the answers: each plan's first, and annotation's other samples."""
    for plan in plans:
        yield plan.request
        if isinstance(worker, Annotator):
            for sample in range(1, worker.chain.spec.samples):
                yield worker.chain.request(plan, sample)


@ray.remote(max_retries=3, retry_exceptions=False)
def _run_shard(recipe: Recipe, shard: int, plans: list[PlannedRecord], running: int, store: Any) -> Generated:
    """Run one shard's plans (one of `running` shards at once); answers go to the store as they arrive.

    The plans were made on the driver; what runs them (the generation chain,
    or annotation's labelling chain) is rebuilt here from the recipe."""
    backend = create_backend(_shard_config(recipe.model, running, shard))
    cache = StoreCache(store, shard)
    worker = _shard_worker(recipe)
    may_have_answers, cache.stop = ray.get(store.begin.remote(shard))
    if may_have_answers:
        cache.prefetch(backend.identity(), _known_requests(worker, plans), recipe.model.max_attempts)
    session = Session(backend, cache)
    try:
        # The shard's spend is counted by the store (the manifest's cost), which says when a cap is reached.
        with spending(StoreLedger(cache), "generation"):
            session.run(lambda scheduler: _run_plans(worker, scheduler, plans, cache.count))
    finally:
        cache.close()
    return Generated.of(worker, session)


def _add_counts(total: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if isinstance(value, dict):
            _add_counts(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


# -- batches of plans as shards -------------------------------------------------------------


class _ShardedBatches:
    """One run's answer store, and the `runner` that cuts each batch of plans into shards and awaits them.

    `run` has the shape of `Generator.run`, so a producer's loop (rounds,
    annotation) runs on the driver and hands it each batch. Shards are
    numbered across batches, so the store's attempts and progress are the
    whole run's; the records of a batch come back in plan order.
    """

    def __init__(self, recipe: Recipe, out: Path, bar: RecordProgress, workers: int, shards: int,
                 max_retries: int, answers: AnswerCounts, poll: float = 0.25):
        self.recipe = recipe
        self.bar = bar
        self.workers = workers
        self.shards_per_batch = shards
        self.max_retries = max_retries
        self.answers = answers
        self.poll = poll
        self.parts: list[Generated] = []
        self.last = GenerationResult()
        self.shards = 0
        self.batches = 0
        self.concurrency = None
        here = ray.get_runtime_context().get_node_id()
        self.store = ray.remote(num_cpus=0, max_restarts=0)(AnswerStore).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
        ).remote(str(out.resolve() / "cache.sqlite"), recipe.model.budget, currency_of(recipe.model))
        self.recipe_ref = ray.put(recipe)

    async def run(self, scheduler: Scheduler, plans: Iterable[PlannedRecord], total: int,
                  on_record: Callable[[Record | None], None] | None = None) -> GenerationResult:
        """Run `total` plans as shards on the cluster; the bar follows the store's counts, not `on_record`."""
        self.last = result = GenerationResult()
        ranges = shard_ranges(total, self.shards_per_batch) if total > 0 else []
        running = max(1, min(self.workers, len(ranges)))
        self.batches += 1
        if self.concurrency is None and ranges:
            self.concurrency = _shard_config(self.recipe.model, running, 0).concurrency
        plans = iter(plans)
        run_ledger = spend_here()
        if self.recipe.model.budget is not None and run_ledger is not None:  # for the caps: the driver's own spend
            ray.get(self.store.spent_outside.remote(run_ledger[0].snapshot()))
        pending: dict[Any, int] = {}
        stopped: BudgetExceeded | None = None
        for start, stop in ranges:
            shard, self.shards = self.shards, self.shards + 1
            shard_plans = list(islice(plans, stop - start))
            ref = _run_shard.options(max_retries=self.max_retries).remote(self.recipe_ref, shard, shard_plans, running, self.store)
            pending[ref] = shard
        finished_parts: dict[int, Generated] = {}
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                self.bar.set(*ray.get(self.store.progress.remote()))
                for ref in finished:
                    shard = pending.pop(ref)
                    try:
                        finished_parts[shard] = ray.get(ref)
                    except Exception as exc:
                        cause = getattr(exc, "cause", exc)
                        if isinstance(cause, BudgetExceeded):
                            # The others stop at their next request: they finish and save what they sent (it is paid for)
                            stopped = stopped or BudgetExceeded(str(cause), cause.stage, cause.cap)
                            continue
                        if isinstance(exc, RunAborted):
                            raise RunAborted(str(cause).strip()) from None
                        if isinstance(exc, ray.exceptions.RayError) and not isinstance(exc, ray.exceptions.RayTaskError):
                            raise RunAborted(f"shard {shard} could not finish after {self.max_retries} retries: {exc}") from None
                        raise
                if pending:
                    await asyncio.sleep(self.poll)
            if stopped is not None:
                raise stopped
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            self.take_spend()
            for shard in sorted(finished_parts):
                part = finished_parts[shard]
                result.records.extend(part.records)
                result.failures.extend(part.failures)
                self.answers.add_json(part.generation.get("answers", {}))
                self.parts.append(part)
        return result

    def take_spend(self) -> None:
        """Add the shards' spend so far to the run's ledger (and the budget's stop, if one was reached)."""
        spent, stop = ray.get(self.store.spent.remote())
        run_ledger = spend_here()
        if run_ledger is not None:
            run_ledger[0].absorb(spent)
            if stop is not None:
                run_ledger[0].stopped = {k: stop[k] for k in ("stage", "cap", "reason")}

    def close(self) -> dict[str, Any]:
        """Close the store; what the manifest says about the shards."""
        details: dict[str, Any] = {"shards": self.shards, "concurrency_per_shard": self.concurrency}
        if self.batches > 1:
            details["batches"] = self.batches
        try:
            details.update(ray.get(self.store.summary.remote()))
            self.take_spend()
            ray.get(self.store.close.remote())
        finally:
            ray.kill(self.store)
        return details


# -- the executor -----------------------------------------------------------------------


class RayExecutor:
    """Runs a recipe's generation shards and curation work on a Ray cluster.

    `address`: the cluster (`ray start` prints it; default: `RAY_ADDRESS`, or
    a new local cluster). `workers`: shards generating at once (default: the
    cluster's CPUs). `shards`: how many pieces the records are cut into
    (default: one per worker; more pieces mean less to redo when a worker
    dies, at the cost of a short ramp at each piece's end).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, shards: int | None = None, max_retries: int = 3):
        self.address = address
        self.workers = workers
        self.shards = shards
        self.max_retries = max_retries
        self.generated = Generated(executor={"name": "ray"})

    def connect(self, progress: bool = True) -> None:
        """Join the cluster (once); a cluster that cannot be reached is a ClusterError."""
        if ray.is_initialized():
            return
        from ray.data import DataContext

        _check_reachable(self.address)
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address and self.address.split(":")[0] in ("127.0.0.1", "localhost"):
            kwargs["_node_ip_address"] = "127.0.0.1"
        try:
            ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise ClusterError(f"cannot join the Ray cluster at {self.address or 'RAY_ADDRESS'}: {message}") from None
        context = DataContext.get_current()
        context.enable_progress_bars = progress
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def _worker_count(self) -> int:
        if self.workers:
            return self.workers
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def generate(self, recipe: Recipe, producer: Producer, out: Path, limit: int | None, bar: RecordProgress) -> Generated:
        """Run the producer's loop here and every batch of its plans as shards on the cluster.

        One-pass generation is one batch; rounds are one batch per round;
        annotation is one batch of inputs. Model-built conditions (a concept
        tree, personas) are asked for here, through the run's cache, once."""
        if not isinstance(producer, (Generator, Rounds, Annotator)):
            raise ClusterError(f"--executor ray cannot run a {type(producer).__name__}; run it with the local executor")
        self.connect(bar.enabled)
        workers = self._worker_count()
        details: dict[str, Any] = {
            "name": "ray",
            "nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
            "workers": workers,
        }
        answers = producer.generator.answers if isinstance(producer, Rounds) else producer.answers
        sharded = _ShardedBatches(recipe, out, bar, workers, self.shards or workers, self.max_retries, answers)
        session = Session(recipe.model, out / "cache.sqlite")
        try:
            session.run(lambda scheduler: producer.produce(scheduler, limit, out=out, runner=sharded.run))
        finally:
            details.update(sharded.close())
            if not isinstance(producer, Rounds):
                producer.last_result = sharded.last  # one batch: also what finished when the run stopped early
            driver = Generated(model_calls=session.stats.to_json(), failure_examples=session.failure_examples())
            self.generated = self._merge([driver, *sharded.parts], details)
            self.generated.records = list(producer.last_result.records)
            self.generated.failures = list(producer.last_result.failures)
            self.generated.generation = producer.summary()
        return self.generated

    @staticmethod
    def _merge(results: list[Generated], details: dict[str, Any]) -> Generated:
        merged = Generated(executor=details)
        for part in results:
            merged.records.extend(part.records)
            merged.failures.extend(part.failures)
            _add_counts(merged.model_calls, part.model_calls)
            for kind, example in part.failure_examples.items():
                merged.failure_examples.setdefault(kind, example)
        return merged

    def curate(self, records: Sequence[Record], recipe: Recipe, context: CurationContext) -> CurationResult:
        blocks = self._worker_count()
        stages = [RayStage(build_stage(spec, context), blocks) for spec in recipe.curation]
        return run_stages(records, stages)

    def prepare_evaluation(self, context: EvaluationContext, recipe: Recipe, kept: Sequence[Record]) -> None:
        """Embed the curated texts over Ray Data when an evaluation stage needs them."""
        fields = {getattr(spec, "field", None) or recipe.text_field for spec in recipe.evaluation if spec.stage in EMBEDDING_STAGES}
        texts = list(dict.fromkeys(r.text(f) for f in fields for r in kept))
        if texts:
            from ..embed import Embedder

            embedder = Embedder.shared()
            embedder.remember(texts, map_blocks(texts, self._worker_count(), embed_texts, None))
            context.embedder = embedder
