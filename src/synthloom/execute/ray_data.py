"""Per-record work over Ray Data: curation stages and embeddings of a run on a Ray cluster.

A stage whose decision reads only its own record (`record_local = True`)
runs over Ray Data blocks; a stage with a global step exposes its
per-record part as `features(records)` (run over Ray Data, e.g. MinHash
signatures) and its global part as `decide(records, features)` (run on the
driver); any other stage runs on the driver. Items travel pickled, and
results come back in order, so the curated data equals a local run's.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Sequence

import numpy as np

from ..curate import Stage
from ..records import Record

class _BlockFunction:
    """Applies `function(argument, items)` to the items of one Ray Data batch (pickled, in order)."""

    def __init__(self, function: Callable[[Any, list[Any]], list[Any]], argument: Any):
        self.function = function
        self.argument = argument

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [pickle.loads(blob) for blob in batch["blob"]]
        results = self.function(self.argument, items)
        blobs = np.empty(len(results), dtype=object)
        blobs[:] = [pickle.dumps(r) for r in results]
        return {"pos": batch["pos"], "blob": blobs}


def map_blocks(items: Sequence[Any], blocks: int, function: Callable[[Any, list[Any]], list[Any]], argument: Any) -> list[Any]:
    """`function(argument, chunk)` over contiguous chunks of `items` on the cluster; results in order."""
    from ray.data import from_items  # here, not at the top: shard tasks import this module and need no Ray Data (nor pandas)

    rows = [{"pos": i, "blob": pickle.dumps(item)} for i, item in enumerate(items)]
    dataset = from_items(rows, override_num_blocks=max(1, min(blocks, len(rows))))
    out = dataset.map_batches(_BlockFunction(function, argument), batch_format="numpy", batch_size=None)
    done = sorted(out.take_all(), key=lambda row: row["pos"])
    return [pickle.loads(row["blob"]) for row in done]


def _apply_stage(stage: Stage, records: list[Record]) -> list[Record]:
    return list(stage(records))


def _stage_features(stage: Any, records: list[Record]) -> list[Any]:
    return list(stage.features(records))


def embed_texts(_: None, texts: list[str]) -> list[np.ndarray]:
    from ..embed import Embedder

    return list(Embedder.shared().encode(texts))


class RayStage:
    """A curation stage whose per-record work runs over Ray Data, its global step on the driver."""

    def __init__(self, stage: Stage, blocks: int):
        self.stage = stage
        self.name = stage.name
        self.blocks = blocks

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        stage = self.stage
        if not records:
            return stage(records)
        if getattr(stage, "record_local", False):
            return map_blocks(records, self.blocks, _apply_stage, stage)
        if callable(getattr(stage, "features", None)) and callable(getattr(stage, "decide", None)):
            features = map_blocks(records, self.blocks, _stage_features, stage)
            return stage.decide(records, features)  # type: ignore[attr-defined]
        return stage(records)


__all__ = ["RayStage", "embed_texts", "map_blocks"]
