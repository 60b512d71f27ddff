"""Curation: from D_gen to a scored, filtered, re-weighted and relabelled D_curated."""

from typing import Sequence

from ..recipe import StageSpec
from ..records import Record
from . import dedup, heuristics, novelty, task_filters  # noqa: F401  (registration)
from .base import (
    DROP,
    KEEP,
    RELABEL,
    REWEIGHT,
    CurationContext,
    CurationResult,
    FunnelStep,
    Stage,
    build_stage,
    is_dropped,
    run_stages,
    stage_for,
)
from .heuristics import ExactDedup, LengthFilter, normalise
from .novelty import Novelty, NoveltyResult, rouge_l, rouge_l_novelty


def curate(records: Sequence[Record], specs: Sequence[StageSpec], context: CurationContext | None = None) -> CurationResult:
    """Run the stages a recipe lists (or any list of stage settings) over records."""
    context = context or CurationContext()
    return run_stages(records, [build_stage(spec, context) for spec in specs])


__all__ = [
    "DROP",
    "KEEP",
    "RELABEL",
    "REWEIGHT",
    "CurationContext",
    "CurationResult",
    "ExactDedup",
    "FunnelStep",
    "LengthFilter",
    "Novelty",
    "NoveltyResult",
    "Stage",
    "build_stage",
    "curate",
    "is_dropped",
    "normalise",
    "rouge_l",
    "rouge_l_novelty",
    "run_stages",
    "stage_for",
]
