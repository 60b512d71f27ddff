"""The generation half of a recipe: the task T, conditions, demonstrations, budget.

In the survey's terms the prompt is E(e_task, e_condition, e_demo): `task`
says what a record is and who writes it, `conditions` are the key-value
pairs sampled per record, and `demonstrations` point at the support data
the in-context examples come from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..templating import TemplateError, compile_template
from .common import DatasetSpec, Strict

ConditionValues = list[str] | dict[str, float]


class TaskSpec(Strict):
    kind: Literal["classification"] = "classification"
    description: str = Field(..., min_length=1, description="what a record is")
    role: str | None = Field(None, description='who writes the data: "a mobile phone user"')
    fields: dict[str, str] = Field(
        default_factory=lambda: {"text": "text"},
        description="fields the model writes: name -> description",
    )
    label_field: str = "label"
    labels: list[str] | dict[str, str] | None = Field(
        None, description="the label set, or label -> description"
    )
    label_weights: dict[str, float] | None = Field(
        None, description="relative share of each label; default: equal"
    )

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("needs at least one field")
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} must be a plain identifier")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        if value is not None:
            names = list(value)
            if len(names) < 2:
                raise ValueError("a label set needs at least two labels")
            if len(set(names)) != len(names):
                raise ValueError("labels must be distinct")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if self.label_field in self.fields:
            raise ValueError(f"label_field {self.label_field!r} is also one of the generated fields")
        if self.label_weights is not None:
            if not self.labels:
                raise ValueError("label_weights needs labels")
            unknown = set(self.label_weights) - set(self.label_names)
            if unknown:
                raise ValueError(f"label_weights names unknown labels: {sorted(unknown)}")
            if any(w < 0 for w in self.label_weights.values()) or not any(
                self.label_weights.values()
            ):
                raise ValueError("label_weights must be non-negative and not all zero")
        return self

    @property
    def label_names(self) -> list[str]:
        return list(self.labels or [])

    def label_description(self, label: str) -> str | None:
        if isinstance(self.labels, dict):
            return self.labels.get(label) or None
        return None


class DemonstrationsSpec(DatasetSpec):
    """Seed examples (D_sup) to show in each prompt."""

    k: int = Field(3, ge=0, le=64, description="demonstrations per prompt; 0 = zero-shot")
    selection: Literal["random"] = "random"
    same_label: bool = Field(True, description="draw demonstrations of the record's label")


class TemplatesSpec(Strict):
    """Jinja2 templates (sandboxed, strict) that override the task kind's defaults."""

    system: str | None = None
    instruction: str | None = None
    demonstration: str | None = None

    @field_validator("system", "instruction", "demonstration")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_template(value)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return value


class GenerationSpec(Strict):
    records: int = Field(100, ge=1, le=10_000_000)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(128, ge=1, le=131_072)
    seed: int = 0
    samples_per_prompt: int = Field(1, ge=1, le=64)
    stop: list[str] | None = None
    templates: TemplatesSpec = Field(default_factory=TemplatesSpec)


def validate_conditions(value: dict[str, ConditionValues]) -> dict[str, ConditionValues]:
    for key, values in value.items():
        if not key.isidentifier():
            raise ValueError(f"condition name {key!r} must be a plain identifier")
        if not values:
            raise ValueError(f"condition {key!r} has no values")
        if isinstance(values, dict):
            if any(w < 0 for w in values.values()) or not any(values.values()):
                raise ValueError(f"weights of condition {key!r} must be non-negative, not all zero")
    return value
