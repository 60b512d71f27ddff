"""Curation: from D_gen to a scored, filtered, re-weighted and relabelled D_curated.

Every stage is listed in a recipe's `curation:` section (or a stages file for
`synthloom curate`), and works on any records, generated here or not:

    from synthloom.curate import curate
    from synthloom.records import read_records
    result = curate(read_records("data.jsonl"), [NoveltySpec(), NearDedupSpec()])

Families of stages, one module each: `heuristics` and `task_filters` (cheap
rules), `dedup` (near and semantic duplicates), `novelty` (the Self-Instruct
ROUGE-L rule), `confidence` (self-consistency, label log-probability, an LLM
judge, the auxiliary model), `weights` (re-weighting), `influence`
(influence functions, k-NN Shapley) and `relabel` (cross-partition
labelling, confident learning, a teacher model), `support` (the real
support set judges, weights and mixes the synthetic records), `verifiers`
(code, SQL and math answers checked by running them in the sandbox),
`evolution` (Evol-Instruct's elimination step) and `grounding` (questions
over documents proven by their chunks). See docs/curation.md.
"""

from typing import Sequence

from ..recipe import StageSpec
from ..records import Record
from . import choice, confidence, dedup, evolution, grounding, heuristics, influence, novelty, real_data, relabel, support, task_filters, tool_checks, verifiers, weights  # noqa: F401
from .auxiliary import held_out_probabilities
from .base import (
    DROP,
    KEEP,
    RELABEL,
    REWEIGHT,
    CurationContext,
    CurationResult,
    FunnelStep,
    NotEnoughData,
    Stage,
    build_stage,
    is_dropped,
    run_stages,
    stage_for,
)
from .confidence import label_probabilities
from .dedup import MinHashResult, minhash_dedup, semantic_duplicates
from .heuristics import ExactDedup, LengthFilter, normalise
from .influence import influence_scores, knn_shapley_values
from .novelty import Novelty, NoveltyResult, rouge_l, rouge_l_novelty
from .relabel import disagreements
from .verifiers import final_answer, strip_fences
from .weights import confidence_weights


def curate(
    records: Sequence[Record], specs: Sequence[StageSpec], context: CurationContext | None = None, check: bool = True
) -> CurationResult:
    """Run the stages a recipe lists (or any list of stage settings) over records.

    With `check`, what can be known before anything runs fails first, as a
    DataError naming the record (e.g. a record without the field a verifier
    reads); without it (generated records, mid-run) such a record is
    dropped with that reason and the others go on.
    """
    context = context or CurationContext()
    stages = [build_stage(spec, context) for spec in specs]
    for stage in stages if check else ():
        stage_check = getattr(stage, "check", None)
        if stage_check is not None:
            stage_check(records)
    return run_stages(records, stages)


__all__ = [
    "DROP",
    "KEEP",
    "RELABEL",
    "REWEIGHT",
    "CurationContext",
    "CurationResult",
    "ExactDedup",
    "FunnelStep",
    "NotEnoughData",
    "LengthFilter",
    "MinHashResult",
    "Novelty",
    "NoveltyResult",
    "Stage",
    "build_stage",
    "confidence_weights",
    "curate",
    "disagreements",
    "final_answer",
    "held_out_probabilities",
    "influence_scores",
    "is_dropped",
    "knn_shapley_values",
    "label_probabilities",
    "minhash_dedup",
    "normalise",
    "rouge_l",
    "rouge_l_novelty",
    "run_stages",
    "semantic_duplicates",
    "stage_for",
    "strip_fences",
]
