"""The recipe: one typed, strict, frozen description of a run, from YAML or Python.

    recipe = load_recipe("examples/sms_spam.yaml")      # errors name file:line and key
    recipe = Recipe(name="x", task=TaskSpec(description="..."))   # the same in Python

A recipe says which model to use, what a record is, how conditions and
demonstrations are drawn, how many records to make, and which curation and
evaluation stages to run.

This module is long on purpose: it is the package's public face, so a
quarter of it re-exports every spec by name (`__all__`), and the checks that
span sections (a task kind and the section it needs, test data that must
not steer the loop) sit on `Recipe` itself, where pydantic's errors name
the recipe line they come from. Each section's own rules live beside its
spec in the sibling modules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from ..llm import BackendConfig, LlamaCppConfig, backend_config_classes
from .common import DatasetSpec, SplitSpec, Strict
from .curation import (
    AuxConfidenceSpec,
    ClaimSupportSpec,
    ConfidentLearningSpec,
    CrossPartitionSpec,
    CurationFile,
    CurationStage,
    EvolEliminationSpec,
    ExactDedupSpec,
    ExecSpec,
    GarbageFilterSpec,
    InfluenceSpec,
    JudgeSpec,
    KnnShapleySpec,
    LabelLeakFilterSpec,
    LabelLogprobSpec,
    LanguageFilterSpec,
    LengthFilterSpec,
    MathAnswerSpec,
    ToolExecutionSpec,
    ToolFormatSpec,
    ToolSemanticSpec,
    MetaTalkFilterSpec,
    ModelStageSpec,
    NearDedupSpec,
    NeedsBothSpec,
    NoveltySpec,
    PythonExecSpec,
    QuoteMatchSpec,
    RetrievalRankSpec,
    UnanswerableCheckSpec,
    RepetitionFilterSpec,
    ReweightSpec,
    SchemaFilterSpec,
    SelfConsistencySpec,
    SemanticDedupSpec,
    SqlExecSpec,
    StageSpec,
    SupportFilterSpec,
    SupportMixSpec,
    SupportAgreeSpec,
    SupportPosteriorSpec,
    AugmentCheckSpec,
    SupportChoiceSpec,
    SupportWeightSpec,
    SUPPORT_STAGES,
    TeacherSpec,
    TextPoolSpec,
    default_curation,
)
from .evaluation import (
    AnsweringSpec,
    FinetuneSpec,
    BenchmarkRef,
    DiversitySpec,
    DownstreamSpec,
    EvaluationStage,
    FaithfulnessSpec,
    FidelitySpec,
    PairwiseSpec,
    default_evaluation,
)
from .documents import QUERY_STYLES, QUESTION_KINDS, TWO_CHUNK_KINDS, DocumentsSpec
from .conditions import ConceptTreeSpec, KnowledgeGraphSpec, PersonasSpec
from .generation import (
    ConditionValues,
    DemonstrationsSpec,
    FieldSpec,
    GenerationSpec,
    TaskSpec,
    TemplatesSpec,
    validate_conditions,
)
from .loader import RecipeError, error_from_validation, load_yaml
from .tools import (
    FunctionSignature,
    McpServerSpec,
    McpToolSpec,
    PythonToolSpec,
    SchemaToolSpec,
    ToolsSpec,
)
from .multistep import AllocationWeights, AnnotationSpec, AugmentationSpec, DialogueSpec, RoundsSpec, StepSpec

ModelConfig = Annotated[Union[backend_config_classes()], Field(discriminator="backend")]  # type: ignore[valid-type]


class Recipe(Strict):
    name: str = Field(..., min_length=1, max_length=100)
    description: str | None = None
    model: ModelConfig = Field(default_factory=LlamaCppConfig)  # type: ignore[valid-type]
    task: TaskSpec
    conditions: dict[str, ConditionValues] = Field(default_factory=dict)
    demonstrations: DemonstrationsSpec | None = None
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    curation: list[CurationStage] = Field(default_factory=default_curation)  # type: ignore[valid-type]
    evaluation: list[EvaluationStage] = Field(default_factory=default_evaluation)  # type: ignore[valid-type]
    steps: list[StepSpec] | None = Field(None, description="sample-wise steps, each one call")
    dialogue: DialogueSpec | None = Field(None, description="role-play settings of a dialogue task")
    rounds: RoundsSpec | None = Field(None, description="dataset-wise rounds")
    annotation: AnnotationSpec | None = Field(None, description="label unlabelled inputs instead of generating")
    augmentation: AugmentationSpec | None = Field(None, description="rewrite real labelled examples instead of generating")
    _base_dir: str | None = PrivateAttr(None)
    documents: DocumentsSpec | None = Field(None, description="questions and answers grounded in these documents")
    tools: ToolsSpec | None = Field(None, description="tool_use: the tools (Python, JSON schema, MCP) calls are made to")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return value

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, value: dict[str, ConditionValues]) -> dict[str, ConditionValues]:
        return validate_conditions(value)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Recipe:
        self._base_dir = (info.context or {}).get("base_dir")
        if self.task.label_field in self.conditions:
            raise ValueError(
                f"conditions: {self.task.label_field!r} is the label field; "
                "set label shares with task.label_weights"
            )
        if self.task.kind == "chat" and self.dialogue is None and len(self.task.fields) < 2:
            raise ValueError("task: a chat task without dialogue needs two fields: the user's message, then the assistant's answer")
        if (self.task.kind == "tool_use") != (self.tools is not None):
            raise ValueError("a tool_use task needs a tools: section, and a tools: section needs task kind tool_use")
        if self.tools is not None:
            other = [k for k in ("steps", "dialogue", "rounds", "annotation", "documents") if getattr(self, k) is not None]
            if other:
                raise ValueError(f"a tool_use task makes its own calls; it takes no {other[0]}: section")
        if self.task.kind == "grounded_qa" and self.documents is None:
            raise ValueError("a grounded_qa task needs a documents: section")
        fields = set(self.task.fields)
        for i, stage in enumerate(list(self.curation) + list(self.evaluation)):
            names = stage.fields_read() if isinstance(stage, ExecSpec) else [getattr(stage, "field", None)]
            for name in names:
                if name is not None and name not in fields:
                    raise ValueError(f"stage {stage.stage!r} names unknown field {name!r}")
        for stage in self.evaluation:
            few = {"few_real", "few_real_plus_synthetic"} & set(getattr(stage, "settings", None) or ())
            if few and getattr(stage, "train", None) is None and getattr(stage, "benchmark", None) is None and self.demonstrations is None:
                raise ValueError(f"downstream settings {sorted(few)} need `train` (real training data) or `demonstrations`")
        self._support_checks()
        return self

    def _support_checks(self) -> None:
        """Support-anchored stages need a support set, and it must not be the downstream test data."""
        tests = [s.test for s in self.evaluation if s.stage == "downstream" and getattr(s, "test", None) is not None]
        for stage in self.curation:
            if stage.stage not in SUPPORT_STAGES:
                continue
            support = stage.reference or self.demonstrations
            if support is None:
                raise ValueError(f"stage {stage.stage!r} needs `reference:` or the recipe's `demonstrations:` (the real support set)")
            if support.label_field is None:
                raise ValueError(f"stage {stage.stage!r}: the support set {support.path} needs a label_field")
            for test in tests:
                if _same_data(support, test):
                    raise ValueError(
                        f"stage {stage.stage!r}: the support set {support.path} is the downstream stage's test data; "
                        "curation must never see the set the final score is measured on"
                    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[StepSpec] | None, info: ValidationInfo) -> list[StepSpec] | None:
        task = info.data.get("task")
        if steps is None or task is None:
            return steps
        names = [step.name for step in steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be distinct")
        written = [f for step in steps for f in step.fields]
        unknown = set(written) - set(task.fields) - {task.label_field}
        if unknown:
            raise ValueError(f"steps write unknown field(s) {sorted(unknown)}; declare them in task.fields")
        missing = [f for f in task.fields if f not in written]
        if missing:
            raise ValueError(f"no step writes field(s) {missing}")
        if len(set(written)) != len(written):
            raise ValueError("each field is written by one step only")
        if task.label_field in written and not task.labels:
            raise ValueError(f"a step writes {task.label_field!r} but the task has no labels")
        if task.kind in ("dialogue", "multilabel"):
            raise ValueError(f"steps are not available for a {task.kind} task")
        return steps

    @field_validator("dialogue")
    @classmethod
    def _dialogue(cls, dialogue: DialogueSpec | None, info: ValidationInfo) -> DialogueSpec | None:
        task = info.data.get("task")
        if dialogue is not None and task is not None and task.kind not in ("dialogue", "chat"):
            raise ValueError("needs task.kind: dialogue or chat")
        if dialogue is not None and info.data.get("steps"):
            raise ValueError("cannot be combined with steps (the role-play writes the conversation)")
        return dialogue

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, rounds: RoundsSpec | None, info: ValidationInfo) -> RoundsSpec | None:
        task = info.data.get("task")
        if rounds is not None and task is not None:
            allowed = set(info.data.get("conditions") or {}) | ({"label"} if task.labels else set())
            unknown = [c for c in rounds.cells if c not in allowed]
            if unknown:
                raise ValueError(f"cells {unknown} are neither `label` (with labels) nor conditions")
        if rounds is not None and rounds.validation is not None:
            for stage in info.data.get("evaluation") or []:
                test = getattr(stage, "test", None)
                if stage.stage == "downstream" and test is not None and _same_data(rounds.validation, test):
                    raise ValueError(
                        f"validation: {rounds.validation.path} is the downstream stage's test data; "
                        "the rounds must not be steered by the set the final score is measured on"
                    )
        return rounds

    @field_validator("annotation")
    @classmethod
    def _annotation(cls, annotation: AnnotationSpec | None, info: ValidationInfo) -> AnnotationSpec | None:
        task = info.data.get("task")
        if annotation is not None and task is not None:
            if not task.labels or task.kind == "multilabel":
                raise ValueError("needs a single-label task with labels")
            if info.data.get("steps") or info.data.get("rounds") or info.data.get("dialogue"):
                raise ValueError("cannot be combined with steps, dialogue or rounds")
        return annotation

    @field_validator("augmentation")
    @classmethod
    def _augmentation(cls, augmentation: AugmentationSpec | None, info: ValidationInfo) -> AugmentationSpec | None:
        task = info.data.get("task")
        if augmentation is not None and task is not None:
            if not task.labels or task.kind == "multilabel":
                raise ValueError("needs a single-label task with labels")
            for key in ("steps", "rounds", "dialogue", "annotation"):
                if info.data.get(key):
                    raise ValueError(f"cannot be combined with {key}")
            if augmentation.input is None and info.data.get("demonstrations") is None:
                raise ValueError("needs `input:` or the recipe's `demonstrations:` (the real examples to rewrite)")
        return augmentation

    @field_validator("documents")
    @classmethod
    def _documents(cls, documents: DocumentsSpec | None, info: ValidationInfo) -> DocumentsSpec | None:
        task = info.data.get("task")
        if task is None:
            return documents
        if documents is not None and task.kind != "grounded_qa":
            raise ValueError("needs task.kind: grounded_qa")
        if documents is not None:
            missing = [f for f in ("question", "answer", "evidence") if f not in task.fields]
            if missing:
                raise ValueError(f"a grounded_qa task writes question, answer and evidence; task.fields lacks {missing}")
            for key in ("steps", "dialogue", "rounds", "annotation"):
                if info.data.get(key):
                    raise ValueError(f"cannot be combined with {key}")
        return documents

    @property
    def text_field(self) -> str:
        return next(iter(self.task.fields))

    @property
    def base_dir(self) -> Path:
        """The folder the recipe's relative paths start from: the recipe file's, else the working directory."""
        return Path(self._base_dir or Path.cwd())


def _same_data(a: DatasetSpec, b: DatasetSpec) -> bool:
    """Whether two dataset specs may share rows: the same file, unless they are the two parts of one split."""
    if Path(a.path).resolve() != Path(b.path).resolve():
        return False
    if a.split is None or b.split is None:
        return True  # a whole file holds every part of a split of it
    return a.split.part == b.split.part or a.split.model_copy(update={"part": b.split.part}) != b.split


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a YAML recipe; any problem raises RecipeError with file:line."""
    path = Path(path)
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise RecipeError("a recipe is a mapping of keys (name, task, ...)", str(path), 1)
    return recipe_from_dict(data, base_dir=path.parent, file=str(path), lines=lines)


def load_curation_file(path: str | Path) -> CurationFile:
    """Read a stand-alone stages file (`synthloom curate --stages`); errors name file:line:key."""
    path = Path(path)
    data, lines = load_yaml(path)
    if isinstance(data, list):  # a bare list of stages
        data, lines = {"curation": data}, {("curation",) + k: v for k, v in lines.items()}
    if not isinstance(data, dict):
        raise RecipeError("a stages file is a mapping with a `curation:` list of stages", str(path), 1)
    try:
        return CurationFile.model_validate(data, context={"base_dir": str(path.parent)})
    except ValidationError as exc:
        raise error_from_validation(exc, data, lines, str(path)) from None


def recipe_from_dict(
    data: dict[str, Any],
    base_dir: str | Path | None = None,
    file: str | None = None,
    lines: dict[tuple[Any, ...], int] | None = None,
) -> Recipe:
    try:
        return Recipe.model_validate(data, context={"base_dir": str(base_dir or Path.cwd())})
    except ValidationError as exc:
        raise error_from_validation(exc, data, lines or {}, file) from None


__all__ = [
    "AnsweringSpec",
    "FinetuneSpec",
    "AllocationWeights",
    "AnnotationSpec",
    "AugmentationSpec",
    "AuxConfidenceSpec",
    "BackendConfig",
    "BenchmarkRef",
    "ConceptTreeSpec",
    "ConfidentLearningSpec",
    "ClaimSupportSpec",
    "CrossPartitionSpec",
    "NeedsBothSpec",
    "QuoteMatchSpec",
    "RetrievalRankSpec",
    "CurationFile",
    "CurationStage",
    "DatasetSpec",
    "DemonstrationsSpec",
    "DialogueSpec",
    "DiversitySpec",
    "DocumentsSpec",
    "QUERY_STYLES",
    "QUESTION_KINDS",
    "TWO_CHUNK_KINDS",
    "DownstreamSpec",
    "EvaluationStage",
    "EvolEliminationSpec",
    "ExactDedupSpec",
    "ExecSpec",
    "FaithfulnessSpec",
    "FidelitySpec",
    "FieldSpec",
    "GarbageFilterSpec",
    "GenerationSpec",
    "InfluenceSpec",
    "JudgeSpec",
    "KnnShapleySpec",
    "KnowledgeGraphSpec",
    "LabelLeakFilterSpec",
    "LabelLogprobSpec",
    "LanguageFilterSpec",
    "LengthFilterSpec",
    "MathAnswerSpec",
    "FunctionSignature",
    "McpServerSpec",
    "McpToolSpec",
    "PythonToolSpec",
    "SchemaToolSpec",
    "ToolsSpec",
    "ToolFormatSpec",
    "ToolExecutionSpec",
    "ToolSemanticSpec",
    "MetaTalkFilterSpec",
    "ModelStageSpec",
    "NearDedupSpec",
    "NoveltySpec",
    "PairwiseSpec",
    "PersonasSpec",
    "PythonExecSpec",
    "Recipe",
    "RecipeError",
    "RepetitionFilterSpec",
    "ReweightSpec",
    "RoundsSpec",
    "SchemaFilterSpec",
    "SelfConsistencySpec",
    "SemanticDedupSpec",
    "SplitSpec",
    "SqlExecSpec",
    "StageSpec",
    "StepSpec",
    "SUPPORT_STAGES",
    "SupportFilterSpec",
    "SupportMixSpec",
    "SupportAgreeSpec",
    "SupportPosteriorSpec",
    "AugmentCheckSpec",
    "SupportChoiceSpec",
    "SupportWeightSpec",
    "TaskSpec",
    "TeacherSpec",
    "TemplatesSpec",
    "TextPoolSpec",
    "UnanswerableCheckSpec",
    "load_curation_file",
    "load_recipe",
    "recipe_from_dict",
]
