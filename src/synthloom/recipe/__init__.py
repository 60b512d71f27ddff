"""The recipe: one typed, strict, frozen description of a run, from YAML or Python.

    recipe = load_recipe("examples/sms_spam.yaml")      # errors name file:line and key
    recipe = Recipe(name="x", task=TaskSpec(description="..."))   # the same in Python

A recipe says which model to use, what a record is, how conditions and
demonstrations are drawn, how many records to make, and which curation and
evaluation stages to run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from ..llm import BackendConfig, LlamaCppConfig, backend_config_classes
from .common import DatasetSpec, SplitSpec, Strict
from .curation import CurationStage, ExactDedupSpec, LengthFilterSpec, StageSpec, default_curation
from .evaluation import (
    BenchmarkRef,
    DiversitySpec,
    DownstreamSpec,
    EvaluationStage,
    FaithfulnessSpec,
    FidelitySpec,
    PairwiseSpec,
    default_evaluation,
)
from .generation import (
    ConditionValues,
    DemonstrationsSpec,
    GenerationSpec,
    TaskSpec,
    TemplatesSpec,
    validate_conditions,
)
from .loader import RecipeError, error_from_validation, load_yaml

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
    def _cross_checks(self) -> Recipe:
        if self.task.label_field in self.conditions:
            raise ValueError(
                f"conditions: {self.task.label_field!r} is the label field; "
                "set label shares with task.label_weights"
            )
        fields = set(self.task.fields)
        for i, stage in enumerate(list(self.curation) + list(self.evaluation)):
            name = getattr(stage, "field", None)
            if name is not None and name not in fields:
                raise ValueError(f"stage {stage.stage!r} names unknown field {name!r}")
        return self

    @property
    def text_field(self) -> str:
        return next(iter(self.task.fields))


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a YAML recipe; any problem raises RecipeError with file:line."""
    path = Path(path)
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise RecipeError("a recipe is a mapping of keys (name, task, ...)", str(path), 1)
    return recipe_from_dict(data, base_dir=path.parent, file=str(path), lines=lines)


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
    "BackendConfig",
    "BenchmarkRef",
    "FaithfulnessSpec",
    "FidelitySpec",
    "PairwiseSpec",
    "CurationStage",
    "DatasetSpec",
    "DemonstrationsSpec",
    "DiversitySpec",
    "DownstreamSpec",
    "EvaluationStage",
    "ExactDedupSpec",
    "GenerationSpec",
    "LengthFilterSpec",
    "Recipe",
    "RecipeError",
    "SplitSpec",
    "StageSpec",
    "TaskSpec",
    "TemplatesSpec",
    "load_recipe",
    "recipe_from_dict",
]
