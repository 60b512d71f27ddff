"""The curation half of a recipe: an ordered list of stages, each `stage: <name>`.

Each stage's settings are a small strict model here; the stage that acts on
them lives in `synthloom.curate`. Keeping the settings here lets a recipe be
validated (with line numbers) without importing any curation code.

Stages that need a model take a `model:` section shaped like the recipe's
(default: the embedded SmolLM2); stages that need real labelled data (the
influence of each record on a validation set) take a data file spec.

It is long (over 400 lines) because every stage's settings live here, each
a short class, so that a recipe validates without importing curation code.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..llm import LlamaCppConfig, backend_config_classes
from .common import DatasetSpec, Strict, resolve_path

ModelConfig = Annotated[Union[backend_config_classes()], Field(discriminator="backend")]  # type: ignore[valid-type]


class StageSpec(Strict):
    field: str | None = Field(None, description="the text field to look at; default: the first")


class TextPoolSpec(DatasetSpec):
    """A file of texts to compare against; it needs no label column."""

    label_field: str | None = None


# -- heuristic filters -----------------------------------------------------------


class ExactDedupSpec(StageSpec):
    """Drop records whose normalised text (case, spacing, punctuation) was seen before."""

    stage: Literal["exact_dedup"] = "exact_dedup"


class LengthFilterSpec(StageSpec):
    """Drop texts shorter or longer than the bounds (characters and words)."""

    stage: Literal["length_filter"] = "length_filter"
    min_chars: int = Field(1, ge=0)
    max_chars: int | None = Field(None, ge=1)
    min_words: int = Field(0, ge=0)
    max_words: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> LengthFilterSpec:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars is below min_chars")
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError("max_words is below min_words")
        return self


class RepetitionFilterSpec(StageSpec):
    """Drop texts that repeat themselves: repeated word n-grams, or one character run on and on."""

    stage: Literal["repetition_filter"] = "repetition_filter"
    n: int = Field(3, ge=1, le=10, description="word n-gram size")
    max_repeated: float = Field(0.3, gt=0, le=1, description="highest share of n-grams that repeat an earlier one")
    max_char_run: int = Field(12, ge=2, description="longest run of one character")


class GarbageFilterSpec(StageSpec):
    """Drop texts with control characters, broken encodings (mojibake, U+FFFD) or too few letters."""

    stage: Literal["garbage_filter"] = "garbage_filter"
    min_letter_share: float = Field(0.5, ge=0, le=1, description="letters among the non-space characters")


class LanguageFilterSpec(StageSpec):
    """Drop texts not in the wanted languages (an offline detector whose models ship with it)."""

    stage: Literal["language_filter"] = "language_filter"
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1, description="ISO 639-1 codes")
    min_confidence: float = Field(0.5, ge=0, le=1, description="the detector's confidence needed to drop")
    min_chars: int = Field(20, ge=0, description="shorter texts are kept: too little to tell")


class MetaTalkFilterSpec(StageSpec):
    """Drop texts where the model talks about the task ("Sure, here is...") or echoes its prompt."""

    stage: Literal["meta_talk_filter"] = "meta_talk_filter"
    patterns: list[str] = Field(default_factory=list, description="extra regular expressions (case-insensitive)")
    builtin_patterns: bool = True
    max_prompt_overlap: float = Field(
        0.5, gt=0, le=1, description="highest share of the text's word n-grams found in its prompt"
    )
    n: int = Field(4, ge=2, le=10)
    echo_of: Literal["instructions", "prompt"] = Field(
        "instructions",
        description="what a text may not echo: the instructions (system and user turns), or the whole prompt, "
        "the demonstrations' example answers included (copies of those are the novelty stage's concern)",
    )


class LabelLeakFilterSpec(StageSpec):
    """Drop texts that name their own label ("this spam message...")."""

    stage: Literal["label_leak_filter"] = "label_leak_filter"
    words: dict[str, list[str]] = Field(
        default_factory=dict, description="label -> more words that give it away; label names always count"
    )


class SchemaFilterSpec(StageSpec):
    """Drop records that break the task's shape: missing fields, unknown labels, wrong types or patterns."""

    stage: Literal["schema_filter"] = "schema_filter"
    required: list[str] | None = Field(None, description="fields that must be non-empty; default: every field")
    labels: list[str] | None = Field(None, description="allowed labels; default: the task's")
    types: dict[str, Literal["str", "int", "float", "bool"]] = Field(default_factory=dict)
    patterns: dict[str, str] = Field(default_factory=dict, description="field -> regex its value must match")


# -- dedup and novelty -------------------------------------------------------------


class NearDedupSpec(StageSpec):
    """MinHash with LSH: drop records whose shingles overlap an earlier record's; clusters are kept."""

    stage: Literal["near_dedup"] = "near_dedup"
    num_perm: int = Field(128, ge=8, le=1024)
    bands: int = Field(16, ge=1)
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(3, ge=1, le=20)
    threshold: float = Field(0.7, ge=0, le=1, description="estimated Jaccard a candidate pair must reach")
    seed: int = 1

    @model_validator(mode="after")
    def _bands(self) -> NearDedupSpec:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self


class SemanticDedupSpec(StageSpec):
    """Drop records whose embedding is within a cosine threshold of an earlier kept record's."""

    stage: Literal["semantic_dedup"] = "semantic_dedup"
    threshold: float = Field(0.95, gt=0, le=1)
    block: int = Field(4096, ge=16, description="rows compared at once (memory: block x records floats)")


class NoveltySpec(StageSpec):
    """Self-Instruct's rule: drop a record whose ROUGE-L with the pool or an earlier kept record is above threshold."""

    stage: Literal["novelty"] = "novelty"
    threshold: float = Field(0.7, ge=0, le=1)
    pool: TextPoolSpec | None = Field(None, description="texts to compare against too, e.g. the seed tasks")


class EvolEliminationSpec(StageSpec):
    """Evol-Instruct's elimination step: drop the evolutions that failed (records without a parent pass).

    `field` is the evolved instruction (default: the first field); its parent's
    text and the request that evolved it are in the record's `meta`.
    """

    stage: Literal["evol_elimination"] = "evol_elimination"
    response_field: str | None = Field(
        "response", description="the answer to the evolved instruction; missing in a record: only the instruction is checked"
    )
    max_similarity: float = Field(
        0.9, gt=0, le=1, description="no new information: the evolved text's similarity to its parent's (rapidfuzz token-set ratio, 0-1) is at least this"
    )
    min_response_words: int = Field(3, ge=0, description="a response with fewer words is too short")
    sorry_max_words: int = Field(80, ge=0, description="a response that apologises or refuses and has fewer words than this cannot answer")
    copy_ngram: int = Field(5, ge=2, le=20, description="copies the request: shares a run of this many words with it")
    judge: ModelConfig | None = Field(  # type: ignore[valid-type]
        None, description="also ask this model the paper's equality question (does the evolved instruction "
        "add constraints, depth or breadth to its parent?) of each in-depth evolution the rules keep",
    )


# -- confidence ----------------------------------------------------------------------


class ModelStageSpec(StageSpec):
    """A stage that asks a model; answers go to the run's cache, so reruns cost nothing."""

    model: ModelConfig = Field(default_factory=LlamaCppConfig)  # type: ignore[valid-type]
    min_score: float | None = Field(None, ge=0, le=1, description="drop records scoring below this")
    max_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int = 0


class SelfConsistencySpec(ModelStageSpec):
    """Ask the model for the label several times; the score is the share that agrees with the record's."""

    stage: Literal["self_consistency"] = "self_consistency"
    samples: int = Field(5, ge=2, le=64)
    shots: int = Field(1, ge=0, le=8, description="example records per label shown in the prompt")
    temperature: float = Field(0.8, ge=0, le=2)
    max_tokens: int = Field(8, ge=1, le=4096)


class LabelLogprobSpec(ModelStageSpec):
    """The model's probability of the record's label, from the log-probabilities of the label tokens."""

    stage: Literal["label_logprob"] = "label_logprob"
    top_logprobs: int = Field(20, ge=1, le=20)
    shots: int = Field(1, ge=0, le=8, description="example records per label shown in the prompt")
    max_tokens: int = Field(1, ge=1, le=16)


class JudgeSpec(ModelStageSpec):
    """An LLM judge with a rubric: a 1-5 score (stored as 0-1) and a short reason."""

    stage: Literal["llm_judge"] = "llm_judge"
    rubric: str | None = Field(None, description="what to judge; default: realistic, on task, label right")
    max_tokens: int = Field(96, ge=8, le=4096)


class AuxConfidenceSpec(StageSpec):
    """An auxiliary model's cross-validated probability of the record's label (embeddings + logistic regression)."""

    stage: Literal["aux_confidence"] = "aux_confidence"
    folds: int = Field(5, ge=2, le=50)
    c: float = Field(1.0, gt=0, description="inverse regularisation of the logistic regression")
    min_score: float | None = Field(None, ge=0, le=1)
    seed: int = 0


# -- weights and influence --------------------------------------------------------------


class ReweightSpec(StageSpec):
    """A training weight per record from confidence scores (formula in docs/curation.md)."""

    stage: Literal["reweight"] = "reweight"
    sources: list[str] = Field(..., min_length=1, description="stages whose 0-1 scores are the confidence")
    floor: float = Field(0.1, ge=0, le=1, description="weight at confidence 0")
    power: float = Field(1.0, gt=0)
    normalise: bool = Field(True, description="scale weights to a mean of 1")


class _ValuationSpec(StageSpec):
    validation: DatasetSpec = Field(..., description="a small set of real labelled records")
    action: Literal["drop", "reweight", "score"] = "drop"
    max_fraction: float = Field(0.1, gt=0, le=1, description="at most this share of records is dropped or down-weighted")
    c: float = Field(1.0, gt=0, description="inverse regularisation of the logistic regression")


class InfluenceSpec(_ValuationSpec):
    """Closed-form influence of each record on the validation loss (embeddings + logistic regression)."""

    stage: Literal["influence"] = "influence"


class KnnShapleySpec(_ValuationSpec):
    """k-nearest-neighbour Shapley value of each record for the validation set (a cheaper valuation)."""

    stage: Literal["knn_shapley"] = "knn_shapley"
    k: int = Field(10, ge=1)


# -- label enhancement -------------------------------------------------------------------


class CrossPartitionSpec(StageSpec):
    """Split into folds, train the auxiliary model on the others, and relabel or drop confident disagreements."""

    stage: Literal["cross_partition"] = "cross_partition"
    folds: int = Field(5, ge=2, le=50)
    repeats: int = Field(1, ge=1, le=20, description="times the folds are redrawn; probabilities are averaged")
    margin: float = Field(
        0.15, ge=0, le=1, description="flag when the held-out prediction beats the record's label by this much"
    )
    action: Literal["relabel", "drop"] = "relabel"
    relabel_confidence: float = Field(
        0.5, ge=0, le=1, description="probability of the new label needed to relabel; below it the record is dropped"
    )
    c: float = Field(1.0, gt=0)
    seed: int = 0


class ConfidentLearningSpec(StageSpec):
    """cleanlab's find_label_issues on the auxiliary model's cross-validated probabilities."""

    stage: Literal["confident_learning"] = "confident_learning"
    folds: int = Field(5, ge=2, le=50)
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"] = (
        "prune_by_noise_rate"
    )
    action: Literal["relabel", "drop"] = "drop"
    c: float = Field(1.0, gt=0)
    seed: int = 0


class TeacherSpec(ModelStageSpec):
    """A second (stronger) model re-annotates only the records other stages flagged."""

    stage: Literal["teacher"] = "teacher"
    review: list[str] = Field(..., min_length=1, description="stages whose relabelled or low-scoring records to re-annotate")
    below: float | None = Field(None, ge=0, le=1, description="also re-annotate records these stages scored below this")
    shots: int = Field(1, ge=0, le=8, description="example records per label (of those not under review) in the prompt")
    max_tokens: int = Field(12, ge=1, le=4096)


# -- support-anchored: the real support set judges the synthetic records -------------------------


class _SupportSpec(StageSpec):
    reference: DatasetSpec | None = Field(
        None, description="the real labelled support set; default: the recipe's demonstrations"
    )
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds on the support")
    c: float | None = Field(
        None, gt=0, description="inverse regularisation of the support model; default: chosen by cross-validation"
    )
    seed: int = 0


class SupportFilterSpec(_SupportSpec):
    """Relabel or drop synthetic records the support-trained model confidently disagrees with."""

    stage: Literal["support_filter"] = "support_filter"
    action: Literal["relabel", "drop"] = "relabel"
    precision: float = Field(
        0.9, gt=0, le=1,
        description="the confidence threshold is the lowest at which the model's held-out predictions on the "
        "support are right this often",
    )


class SupportWeightSpec(_SupportSpec):
    """Weight each synthetic record by the support-trained model's probability of its label."""

    stage: Literal["support_weight"] = "support_weight"
    floor: float = Field(0.1, ge=0, le=1, description="weight at probability 0")
    power: float = Field(1.0, gt=0)
    normalise: bool = Field(True, description="scale weights to a mean of 1 (before the mixing factor)")


class SupportMixSpec(_SupportSpec):
    """Scale synthetic weights by the factor (from a grid) that scores best on held-out support folds."""

    stage: Literal["support_mix"] = "support_mix"
    grid: list[float] = Field(
        default_factory=lambda: [0.05, 0.1, 0.25, 0.5, 1.0], min_length=1,
        description="factors tried: synthetic weight relative to a real record's 1",
    )

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: list[float]) -> list[float]:
        if any(w <= 0 for w in value):
            raise ValueError("factors must be above 0 (a factor of 0 would drop every synthetic record)")
        return sorted(set(value))


class SupportAgreeSpec(_SupportSpec):
    """Check model-given labels (an annotated real pool) against the support-trained model.

    Records whose label the support model also predicts (its top label) are kept;
    the others are dropped, with the support model's probability of the given
    label as their score: `synthloom review RUN --rejected` shows them least
    confident first."""

    stage: Literal["support_agree"] = "support_agree"


class SupportPosteriorSpec(_SupportSpec):
    """Label a model-labelled real pool by both judges: the support model's probabilities and the model's label,
    weighed by how often the model's labels are right on the support set itself.

    The model's confusion matrix (what it says for each true label) is counted on the
    model's labels for the support set's own texts (an input is never shown itself as
    a demonstration): the records handed to the stage whose text is a support text
    (annotate the support texts in the same run; they are then dropped, as support
    examples), or a `calibration` file. Each record's label becomes the argmax
    of p(label | text, model's label) ~ p_support(label | text) x (stated share /
    support share) x P(model says its label | label); its weight is multiplied by that
    posterior."""

    stage: Literal["support_posterior"] = "support_posterior"
    calibration: DatasetSpec | None = Field(
        None, description="the model's labels on the support set's texts (an annotation run over the support: its "
        "generated.parquet), matched to the support's own labels by text; default: the records of this run whose "
        "text is a support text",
    )
    smoothing: float = Field(1.0, ge=0, description="pseudo-count added to every cell of the model's confusion matrix")
    min_posterior: float = Field(0.0, ge=0, le=1, description="drop a record whose posterior for its label is below this")
    shares: Literal["task", "support"] = Field(
        "task", description="the class mix the posterior assumes: the task's stated label_weights (equal when none), "
        "or the support set's",
    )


class AugmentCheckSpec(_SupportSpec):
    """Drop rewrites of real examples that are near-copies of their source or that changed its meaning."""

    stage: Literal["augment_check"] = "augment_check"
    max_ratio: float = Field(
        90.0, ge=0, le=100, description="rapidfuzz ratio to the source at or above which a rewrite is a near-copy"
    )
    max_cosine: float = Field(0.97, ge=-1, le=1, description="embedding cosine to the source at or above which it is a near-copy")
    min_cosine: float = Field(0.35, ge=-1, le=1, description="embedding cosine to the source below which the meaning changed")
    precision: float = Field(
        0.9, gt=0, le=1,
        description="a support model's other label at a confidence where its held-out support predictions are "
        "right this often also counts as a change of meaning",
    )


CHOICE_CANDIDATES = ("none", "plain", "filter", "weight", "augment", "pool", "self", "posterior")
CHOICE_POOL_TREATMENTS = ("pool", "self", "posterior")
CHOICE_GENERATED_TREATMENTS = ("plain", "filter", "weight", "augment")
# Tried unless `candidates:` says otherwise: every single candidate and two combinations (picked on a dev split of
# training records, never test data: benchmarks/headline.py, seeds 10-14)
CHOICE_DEFAULTS = CHOICE_CANDIDATES + ("posterior+filter", "posterior+weight")


class SupportChoiceSpec(_SupportSpec):
    """Choose, by cross-validation on the support set only, which synthetic data to add to it, and how heavily.

    Candidates: `none` (the support alone), `plain` (the generated records as they
    are), `filter` (relabelled by the support model as support_filter does),
    `weight` (weighted by it as support_weight does), `augment` (rewrites of the
    support, from the `augment` mode), `pool` (a model-labelled real pool, the
    records the support model agrees with), `self` (the same pool, every record
    labelled by the support model alone: self-training, no model labels),
    `posterior` (the same pool labelled as support_posterior labels it; needs the
    model's labels on the support texts: in the records or a `calibration` file);
    `posterior+filter` and the like: a pool treatment and a treatment of the
    generated records together (by default `posterior+filter` and
    `posterior+weight` are tried too). Each is
    tried at every factor (synthetic weight relative to a real record's 1). The
    classifier of each fold chooses its C by the trainers' cross-validation rule on
    that fold's training part; `c` fixes it.

    Held-out support predictions are scored under the task's stated class shares
    (`shares: task`, from `task.label_weights`; equal when it states none): a
    balanced support set cannot otherwise show what mislabelling the common class
    costs. The best candidate replaces the baseline (`baseline: none`, the support
    alone) only when its held-out gain over it exceeds one standard error of that
    gain across the held-out folds (`rule: one_se`; `best`: the best score wins)."""

    stage: Literal["support_choice"] = "support_choice"
    candidates: list[str] = Field(
        default_factory=lambda: list(CHOICE_DEFAULTS), min_length=1,
        description="what may be chosen; candidates with no records (no augmentations, no pool) are skipped; "
        "`pool|self|posterior` + `plain|filter|weight|augment` (e.g. `posterior+filter`): both together",
    )
    baseline: str = Field(
        "none", description="what the best candidate must beat by one standard error (`rule: one_se`): `none` (the "
        "support alone), a candidate, or `auto`: `posterior` when the pool and the model's labels on the support are "
        "there, else `none`",
    )
    factors: list[float] = Field(
        default_factory=lambda: [0.3, 1.0], min_length=1, description="synthetic weights relative to real, tried for each candidate"
    )
    repeats: int | None = Field(
        None, ge=1, le=20, description="redraws of the folds; default: enough for 100 held-out predictions, at most 5"
    )
    precision: float = Field(0.9, gt=0, le=1, description="of the `filter` candidate (see support_filter)")
    floor: float = Field(0.1, ge=0, le=1, description="of the `weight` candidate (see support_weight)")
    shares: Literal["task", "support"] = Field(
        "task", description="how held-out predictions are weighted when scored: `task`: each label by the task's stated "
        "share (task.label_weights; equal when not stated); `support`: as the labels fall in the support set",
    )
    rule: Literal["one_se", "best"] = Field(
        "one_se", description="`one_se`: the best candidate replaces `none` only when its held-out gain over it exceeds "
        "one standard error of that gain across the held-out folds; `best`: the best held-out score wins",
    )
    calibration: DatasetSpec | None = Field(
        None, description="the `posterior` candidate: the model's labels on the support texts (see support_posterior); "
        "default: the pool records whose text is a support text",
    )
    smoothing: float = Field(1.0, ge=0, description="the `posterior` candidate's pseudo-count (see support_posterior)")

    @field_validator("factors")
    @classmethod
    def _factors(cls, value: list[float]) -> list[float]:
        if any(w <= 0 for w in value):
            raise ValueError("factors must be above 0 (the `none` candidate is the support alone)")
        return sorted(set(value))

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, value: list[str]) -> list[str]:
        for name in value:
            if name in CHOICE_CANDIDATES:
                continue
            pool, _, generated = name.partition("+")
            if pool not in CHOICE_POOL_TREATMENTS or generated not in CHOICE_GENERATED_TREATMENTS:
                raise ValueError(f"unknown candidate {name!r}: one of {', '.join(CHOICE_CANDIDATES)}, or a pool treatment "
                                 f"({', '.join(CHOICE_POOL_TREATMENTS)}) + a treatment of generated records "
                                 f"({', '.join(CHOICE_GENERATED_TREATMENTS)}), e.g. posterior+filter")
        return value

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str) -> str:
        if value != "auto" and value not in CHOICE_CANDIDATES:
            raise ValueError(f"baseline must be auto or one of {', '.join(CHOICE_CANDIDATES)}, not {value!r}")
        return value


SUPPORT_STAGES = ("support_filter", "support_weight", "support_mix", "support_agree", "support_posterior", "augment_check",
                  "support_choice")


# -- verifiers: model-written code, SQL and math answers checked by running them ---------------


class ExecSpec(StageSpec):
    """What every verifier's sandboxed children may use (see docs/curation.md, "The sandbox")."""

    timeout: float = Field(10.0, gt=0, le=3600, description="wall seconds per program")
    cpu_seconds: float = Field(5.0, gt=0, le=3600)
    memory_mb: int = Field(1024, ge=64, le=1 << 20, description="address space of a program")
    parallel: int | None = Field(None, ge=1, le=256, description="programs at once; default: the CPUs")

    def fields_read(self) -> list[str]:
        """Fields every record must have (checked before anything runs)."""
        return [self.field] if self.field else []


class PythonExecSpec(ExecSpec):
    """Run the record's code with its tests (assert statements) in the sandbox; keep it when all pass."""

    stage: Literal["python_exec"] = "python_exec"
    field: str | None = Field("code", description="the field holding the code (a ```python block is taken out)")
    tests_field: str | None = Field("tests", description="the record's own tests, e.g. generated with the code")
    tests: str | None = Field(None, description="tests run after every record's code (and its own tests)")


class SqlExecSpec(ExecSpec):
    """Run the record's query against a SQLite database (read-only, in the sandbox); compare or check non-empty."""

    stage: Literal["sql_exec"] = "sql_exec"
    field: str | None = Field("sql", description="the field holding the query")
    database: str = Field(..., description="a SQLite database file, relative to the recipe")
    reference_field: str | None = Field(
        None, description="the field holding a reference query; without it a query passes when it returns rows"
    )
    max_rows: int = Field(10000, ge=1, description="rows read from each result at most")
    timeout: float = Field(5.0, gt=0, le=3600)

    @field_validator("database")
    @classmethod
    def _database(cls, value: str, info: ValidationInfo) -> str:
        path = resolve_path(value, info)
        if not path.is_file():
            raise ValueError(f"SQLite database not found: {path}")
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise ValueError(f"not a SQLite database: {path}")
        return str(path)

    def fields_read(self) -> list[str]:
        return super().fields_read() + ([self.reference_field] if self.reference_field else [])


class MathAnswerSpec(ExecSpec):
    """Parse final answers (\\boxed{}, "the answer is", the last number) and compare them with sympy."""

    stage: Literal["math_answer"] = "math_answer"
    field: str | None = Field("answer", description="the field holding the solution or answer")
    reference_field: str | None = Field("reference", description="the field holding the reference answer")
    samples_field: str | None = Field(
        None, description="a field holding a list of sampled answers: without a reference, the majority decides"
    )
    min_agreement: float = Field(
        0.5, ge=0, lt=1, description="without a reference: keep when more than this share of samples agree"
    )
    timeout: float = Field(5.0, gt=0, le=600, description="seconds to compare one pair of answers")

    @model_validator(mode="after")
    def _something_to_compare(self) -> MathAnswerSpec:
        if not self.reference_field and not self.samples_field:
            raise ValueError("give reference_field or samples_field (or both): there is nothing to compare with")
        return self


# -- grounding (questions over documents; see docs/documents.md) ----------------------------


class QuoteMatchSpec(StageSpec):
    """Every evidence quote must occur in one of the record's reference contexts (fuzzy, a threshold)."""

    stage: Literal["quote_match"] = "quote_match"
    field: str | None = "evidence"
    threshold: float = Field(90.0, ge=0, le=100, description="rapidfuzz partial_ratio (0-100) a quote needs")


class ClaimSupportSpec(ModelStageSpec):
    """A judge with a rubric: is every claim of the answer supported by the evidence quotes? 1-5, stored 0-1."""

    stage: Literal["claim_support"] = "claim_support"
    field: str | None = "answer"
    min_score: float | None = Field(0.75, ge=0, le=1, description="drop records scoring below this")
    max_tokens: int = Field(96, ge=8, le=4096)
    nli_model: str | None = Field(
        None, description="a local NLI cross-encoder folder (relative to the recipe): the quotes must entail "
                          "the answer; its entailment probability is the score, and no judge is asked")

    @field_validator("nli_model")
    @classmethod
    def _nli_model(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        if not (path / "config.json").is_file():
            raise ValueError(f"not a model folder (no config.json): {path}")
        return str(path)


class NeedsBothSpec(ModelStageSpec):
    """Two-chunk questions must need both chunks: asked with each chunk alone, neither may answer."""

    stage: Literal["needs_both_chunks"] = "needs_both_chunks"
    field: str | None = "question"
    max_tokens: int = Field(16, ge=1, le=4096)


class UnanswerableCheckSpec(ModelStageSpec):
    """Unanswerable questions must be: the k chunks nearest the question (and its own) are asked; any yes drops it."""

    stage: Literal["unanswerable_check"] = "unanswerable_check"
    field: str | None = "question"
    k: int = Field(3, ge=1, le=100, description="the nearest chunks (MiniLM) asked besides the record's own")
    max_tokens: int = Field(16, ge=1, le=4096)
    chunks: str | None = Field(None, description="chunks.parquet to search; default: the run's chunks")

    @field_validator("chunks")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))


class RetrievalRankSpec(StageSpec):
    """A question must retrieve its own chunk: its rank among all chunks by MiniLM and by BM25 within top k."""

    stage: Literal["retrieval_rank"] = "retrieval_rank"
    field: str | None = "question"
    k: int = Field(5, ge=1, le=1000)
    methods: list[Literal["minilm", "bm25"]] = Field(default_factory=lambda: ["minilm", "bm25"], min_length=1)
    require: Literal["any", "all"] = Field("any", description="keep when any (or all) methods rank the chunk in the top k")
    chunks: str | None = Field(None, description="chunks.parquet to rank among; default: the run's chunks")

    @field_validator("chunks")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))


# -- tool use (APIGen's three checks; see docs/post_training.md) -----------------------------


class ToolFormatSpec(StageSpec):
    """The trajectory's calls parse, name tools that exist, and their arguments validate against the schema."""

    stage: Literal["tool_format"] = "tool_format"


class ToolExecutionSpec(StageSpec):
    """Every call runs again (Python tools in the sandbox, MCP tools on their server): no error, no timeout,
    a non-empty result."""

    stage: Literal["tool_execution"] = "tool_execution"
    timeout: float | None = Field(None, gt=0, le=3600, description="seconds per call; default: the recipe's tools.timeout")


class ToolSemanticSpec(ModelStageSpec):
    """A judge reads the query, the calls, their results and the answer: do they answer the query?"""

    stage: Literal["tool_semantic"] = "tool_semantic"
    max_tokens: int = Field(48, ge=1, le=4096)


CURATION_STAGES: tuple[type[StageSpec], ...] = (
    ExactDedupSpec,
    LengthFilterSpec,
    RepetitionFilterSpec,
    GarbageFilterSpec,
    LanguageFilterSpec,
    MetaTalkFilterSpec,
    LabelLeakFilterSpec,
    SchemaFilterSpec,
    NearDedupSpec,
    SemanticDedupSpec,
    NoveltySpec,
    EvolEliminationSpec,
    SelfConsistencySpec,
    LabelLogprobSpec,
    JudgeSpec,
    AuxConfidenceSpec,
    ReweightSpec,
    InfluenceSpec,
    KnnShapleySpec,
    CrossPartitionSpec,
    ConfidentLearningSpec,
    TeacherSpec,
    SupportFilterSpec,
    SupportWeightSpec,
    SupportMixSpec,
    SupportAgreeSpec,
    SupportPosteriorSpec,
    AugmentCheckSpec,
    SupportChoiceSpec,
    PythonExecSpec,
    SqlExecSpec,
    MathAnswerSpec,
    QuoteMatchSpec,
    ClaimSupportSpec,
    NeedsBothSpec,
    RetrievalRankSpec,
    UnanswerableCheckSpec,
    ToolFormatSpec,
    ToolExecutionSpec,
    ToolSemanticSpec,
)

CurationStage = Annotated[Union[CURATION_STAGES], Field(discriminator="stage")]  # type: ignore[valid-type]


class CurationFile(Strict):
    """A stand-alone list of stages for `synthloom curate --stages FILE`: data columns, labels, stages."""

    text_field: str = "text"
    label_field: str | None = "label"
    labels: list[str] | None = Field(None, description="the label set; default: the labels found in the data")
    description: str | None = Field(None, description="what a record is (for model-backed stages)")
    curation: list[CurationStage] = Field(..., min_length=1)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _support_given(self) -> CurationFile:
        for stage in self.curation:
            if stage.stage in SUPPORT_STAGES and stage.reference is None:
                raise ValueError(f"stage {stage.stage!r} needs `reference:` (the real support set) in a stages file")
        return self


def default_curation() -> list[StageSpec]:
    return [ExactDedupSpec(), LengthFilterSpec(min_chars=5)]
