"""Curation: from D_gen to a scored, filtered, re-weighted and relabelled D_curated."""

from typing import Sequence

from ..recipe import StageSpec
from ..records import Record
from . import heuristics  # noqa: F401  (registration)
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
    "Stage",
    "build_stage",
    "curate",
    "is_dropped",
    "normalise",
    "run_stages",
    "stage_for",
]
