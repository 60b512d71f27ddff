"""The evaluation half of a recipe: direct measures and indirect (train, then test) ones.

Each stage is `stage: <name>` with its own strict settings; the code that
acts on them lives in `synthloom.evaluate`. Judge-based stages take a model
config of the same shape as the recipe's `model:` (default: the recipe's
own model).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..llm import backend_config_classes
from .common import DatasetSpec, Strict, resolve_path

JudgeModel = Annotated[Union[backend_config_classes()], Field(discriminator="backend")]  # type: ignore[valid-type]

Trainer = Literal["embedding_logreg", "tfidf_linear", "finetune_minilm"]
Setting = Literal["synthetic", "majority", "few_real", "few_real_plus_synthetic", "real", "learning_curve"]
Criterion = Literal["fluent", "on_task", "label_correct", "factual"]
# The benchmark registry's names (synthloom.evaluate.benchmarks.BENCHMARKS; a test keeps them equal).
BenchmarkName = Literal[
    "sms_spam", "ag_news", "imdb", "go_emotions", "clinc150", "banking77", "fewrel", "qnli", "rte",
    "adversarial_qa", "truthful_qa", "math", "toolbench", "niv2", "bigbench",
]
# The QA and generative ones, answered by a model rather than learned by a classifier (a test keeps them equal).
ANSWERED_BENCHMARKS = ("adversarial_qa", "truthful_qa", "math", "toolbench", "niv2", "bigbench")
UNCHECKABLE_BENCHMARKS = ("truthful_qa", "toolbench")  # judged, not checked: no reference a fine-tune's answer can match


class DiversitySpec(Strict):
    """Lexical and semantic diversity of the curated texts, overall and per label, and condition coverage."""

    stage: Literal["diversity"] = "diversity"
    n: list[int] = Field(default_factory=lambda: [1, 2, 3])
    field: str | None = None
    per_label: bool = True
    embeddings: bool = Field(True, description="mean pairwise cosine and the Vendi score (needs the embedding model)")
    self_bleu_sample: int = Field(500, ge=0, description="texts scored by self-BLEU; 0 = skip")
    seed: int = 0


class FidelitySpec(Strict):
    """How close the data is to real data: two-sample AUC, k-NN precision/recall, label and length divergence."""

    stage: Literal["fidelity"] = "fidelity"
    reference: DatasetSpec
    field: str | None = None
    k: int = Field(5, ge=1, le=100, description="neighbours that set a point's radius")
    max_records: int = Field(5000, ge=10, description="each side is subsampled to at most this many")
    seed: int = 0


class BenchmarkRef(Strict):
    """A test set from the benchmark registry, from a local copy or the Hugging Face hub."""

    name: BenchmarkName
    path: str | None = Field(None, description="a local copy (file or folder); default: the hub")
    split: Literal["train", "test"] = "test"
    config: str | None = None
    labels: int | None = Field(None, ge=2, description="keep only the n labels most frequent in the train split")

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        if not path.exists():
            raise ValueError(f"file not found: {path}")
        return str(path)


class DownstreamSpec(Strict):
    """Train a small classifier on the curated data and score it on real labelled data.

    By default every setting the data allows is scored on the same test set:
    the majority-class baseline, the few real examples alone (the recipe's
    labelled demonstrations, else `few_per_class` per class of `train`), the
    synthetic records alone, few real + synthetic, and all of `train`.
    """

    stage: Literal["downstream"] = "downstream"
    test: DatasetSpec | None = None
    benchmark: BenchmarkRef | None = None
    train: DatasetSpec | None = Field(None, description="real training data, for the `real` and `few_real` settings")
    trainer: Trainer = "embedding_logreg"
    settings: list[Setting] | None = Field(None, description="default: every setting the data allows")
    few_per_class: int = Field(10, ge=1, description="few real per class drawn from `train` when the recipe has no labelled demonstrations")
    learning_curve: list[int] | None = Field(None, description="synthetic set sizes; default: 10, 25, 50, 100%")
    bootstrap: int = Field(1000, ge=0, description="resamples for the intervals; 0 = none")
    errors: bool = Field(True, description="per-class and per-condition errors, for the next generation round")
    field: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one_test_set(self) -> DownstreamSpec:
        if (self.test is None) == (self.benchmark is None):
            raise ValueError("give exactly one of `test` (a file) and `benchmark` (a registry entry)")
        if "real" in (self.settings or ()) and self.train is None and self.benchmark is None:
            raise ValueError("setting `real` needs `train` (real training data)")
        return self


class FaithfulnessSpec(Strict):
    """A judge checks a random sample against a rubric; the faithful share with a Wilson interval."""

    stage: Literal["faithfulness"] = "faithfulness"
    judge: JudgeModel | None = Field(None, description="the judge model; default: the recipe's model")  # type: ignore[valid-type]
    sample: int = Field(50, ge=1)
    criteria: list[Criterion] = Field(default_factory=lambda: ["fluent", "on_task", "label_correct", "factual"])
    level: float = Field(0.95, gt=0, lt=1)
    max_tokens: int = Field(96, ge=8)
    reviews: str | None = Field(None, description="SQLite file with a `reviews` table; default: reviews.sqlite in the run directory")
    seed: int = 0


class PairwiseSpec(Strict):
    """Open evaluation: a judge compares the records' answers with a baseline's, in both orders."""

    stage: Literal["pairwise"] = "pairwise"
    judge: JudgeModel | None = None  # type: ignore[valid-type]
    baseline: DatasetSpec = Field(..., description="answers to compare with, matched on the prompt field")
    prompt_field: str
    answer_field: str
    sample: int | None = Field(None, ge=1, description="judge at most this many prompts")
    bootstrap: int = Field(1000, ge=10)
    seed: int = 0


class AnsweringSpec(Strict):
    """Indirect evaluation on a QA or generative benchmark: a model answers its real test questions
    with the records as in-context worked examples, and zero-shot; both scored against the references."""

    stage: Literal["answering"] = "answering"
    benchmark: BenchmarkRef
    model: JudgeModel | None = Field(None, description="the answering model; default: the recipe's model")  # type: ignore[valid-type]
    judge: JudgeModel | None = Field(None, description="grades answers when scoring uses a judge; default: the recipe's model")  # type: ignore[valid-type]
    shots: int = Field(3, ge=1, le=32, description="synthetic records shown as worked examples per question")
    selection: Literal["random", "nearest"] = Field("random", description="examples at random, or nearest the question in embedding space")
    n: int = Field(50, ge=1, description="test questions answered (a seeded sample)")
    answer_field: str = Field("answer", description="the records' field that holds the answer")
    input_fields: list[str] | None = Field(None, description="the fields shown as input; default: the benchmark's (e.g. context, question)")
    scoring: Literal["exact_match", "judge", "both"] | None = Field(
        None, description="exact match and token F1, a judge, or both; default: the benchmark's metric"
    )
    zero_shot: bool = Field(True, description="also answer with no examples, the baseline")
    instruction: str | None = Field(None, description="the system instruction; default: one per benchmark")
    max_tokens: int | None = Field(None, ge=1, description="per answer; default: 64 (256 for math and toolbench)")
    seed: int = 0

    @field_validator("benchmark")
    @classmethod
    def _answerable(cls, ref: BenchmarkRef) -> BenchmarkRef:
        if ref.name not in ANSWERED_BENCHMARKS:
            raise ValueError(
                f"{ref.name} is a classification benchmark: use `stage: downstream` (a classifier trained on the data); "
                f"`answering` takes {', '.join(ANSWERED_BENCHMARKS)}"
            )
        if ref.labels is not None:
            raise ValueError("`labels` restricts a classification benchmark's labels; not for answering")
        return ref


class FinetuneSpec(Strict):
    """Fine-tune a causal language model on the records (TRL SFT or DPO, LoRA by default) and score the base
    and fine-tuned models on the same held-out real prompts: label choice for classification (`test` or a
    classification `benchmark`), a judge's position-swapped win rate over the base model for open instructions
    (`prompts`)."""

    stage: Literal["finetune"] = "finetune"
    model: str | None = Field(None, description="a local Hugging Face folder, a .gguf file or a cached hub id; default: the embedded SmolLM2-135M-Instruct")
    method: Literal["sft", "dpo"] = "sft"
    lora: bool = True
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(4, ge=1)
    learning_rate: float | None = Field(None, gt=0, description="default: 2e-4 with LoRA, 2e-5 full")
    max_length: int = Field(256, ge=16)
    test: DatasetSpec | None = Field(None, description="real labelled test data (classification)")
    benchmark: BenchmarkRef | None = None
    train: DatasetSpec | None = Field(None, description="real training data: the same model fine-tuned on as many real examples")
    prompts: DatasetSpec | None = Field(None, description="held-out real prompts: judged pairwise, or checked (`scoring`)")
    prompt_field: str = "prompt"
    scoring: Literal["judge", "exact_match", "math", "code"] | None = Field(
        None, description="how answers to `prompts` are scored: judge (default; base vs fine-tuned pairwise), exact_match "
        "against `reference_field`, math (final answer = reference by sympy), code (pass@1 against `tests_field`); "
        "a QA or math benchmark is scored by exact match or math"
    )
    reference_field: str = Field("answer", description="the prompts file's reference answer (exact_match, math)")
    tests_field: str = Field("tests", description="the prompts file's tests, assert statements (code)")
    judge: JudgeModel | None = Field(None, description="the pairwise judge; default: the recipe's model")  # type: ignore[valid-type]
    n_test: int = Field(200, ge=2, description="test rows or prompts scored (a seeded sample)")
    learning_curve: list[float] | None = Field(
        default_factory=lambda: [0.25, 0.5, 1.0], description="shares of the records fine-tuned on; 1.0 is the headline model"
    )
    minilm: bool = Field(True, description="beside it, the MiniLM + logistic-regression classifier on the same data (classification)")
    max_new_tokens: int = Field(128, ge=1)
    bootstrap: int = Field(1000, ge=10)
    seed: int = 0

    @field_validator("learning_curve")
    @classmethod
    def _shares(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 < v <= 1 for v in value):
            raise ValueError("learning_curve shares must be in (0, 1]")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> FinetuneSpec:
        if sum(x is not None for x in (self.test, self.benchmark, self.prompts)) != 1:
            raise ValueError("give exactly one of `test` (labelled file), `benchmark` and `prompts` (held-out prompts)")
        if self.benchmark is not None and self.benchmark.name in UNCHECKABLE_BENCHMARKS:
            raise ValueError(f"{self.benchmark.name} has no answers to check; give its questions as `prompts` (judged pairwise)")
        if self.scoring is not None and self.prompts is None:
            raise ValueError("`scoring` says how answers to `prompts` are scored; a benchmark is scored by its own measure")
        if self.method == "dpo" and (self.prompts is None or self.scoring not in (None, "judge")):
            raise ValueError("method dpo needs `prompts` judged pairwise (preference pairs are judged on open prompts)")
        return self

    def answer_scoring(self) -> str | None:
        """How answers are checked: exact_match, math or code; None for label choice or the pairwise judge."""
        if self.benchmark is not None and self.benchmark.name in ANSWERED_BENCHMARKS:
            return "math" if self.benchmark.name == "math" else "exact_match"
        return self.scoring if self.scoring not in (None, "judge") else None


EvaluationStage = Annotated[
    Union[DiversitySpec, FidelitySpec, DownstreamSpec, FaithfulnessSpec, PairwiseSpec, AnsweringSpec, FinetuneSpec],
    Field(discriminator="stage"),
]


def default_evaluation() -> list[Strict]:
    return [DiversitySpec()]
