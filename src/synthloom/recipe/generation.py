"""The generation half of a recipe: the task T, conditions, demonstrations, budget.

In the survey's terms the prompt is E(e_task, e_condition, e_demo): `task`
says what a record is and who writes it, `conditions` are the key-value
pairs sampled per record, and `demonstrations` point at the support data
the in-context examples come from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..templating import TemplateError, compile_template
from .common import DatasetSpec, Strict
from .conditions import ConditionValues, validate_conditions

TaskKind = Literal["classification", "multilabel", "pair", "qa", "instruction", "chat", "dialogue", "free", "grounded_qa", "tool_use"]
FieldType = Literal["string", "integer", "number", "boolean", "list"]

# The fields each kind of task writes when a recipe does not name its own.
DEFAULT_FIELDS: dict[str, dict[str, Any]] = {
    "classification": {"text": "text"},
    "multilabel": {"text": "text"},
    "pair": {"premise": "a short passage", "hypothesis": "one sentence about the passage"},
    "qa": {
        "context": "a short passage",
        "question": "a question the passage answers",
        "answer": "the answer, in a few words from the passage",
    },
    "instruction": {"instruction": "a request a user might make", "response": "a helpful answer"},
    "chat": {"instruction": "a request a user might make", "response": "a helpful answer"},
    "dialogue": {"dialogue": "the conversation"},
    # Tool-use trajectories (a recipe's `tools:` section): the query, then the final answer; the calls,
    # the tools' real results and the whole conversation go into `messages` and `tools` (docs/post_training.md).
    "tool_use": {"query": "a request that needs the tools", "answer": "the final answer, from the tools' results"},
    # Questions grounded in documents (a recipe's `documents:` section); see docs/documents.md.
    "grounded_qa": {
        "question": "a question the passage answers",
        "answer": "the answer, from the passage",
        "evidence": {"description": "sentences copied word for word from the passage that the answer rests on",
                     "type": "list"},
    },
}


def template_source(value: str | None) -> str | None:
    """A Jinja2 template that compiles, or a ValueError saying where it does not."""
    if value is not None:
        try:
            compile_template(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
    return value


class FieldSpec(Strict):
    """A typed output field: what it holds and, for JSON output, its JSON type."""

    description: str = Field(..., min_length=1)
    type: FieldType = "string"
    enum: list[str] | None = Field(None, description="the only values allowed (strings)")

    @model_validator(mode="after")
    def _enum(self) -> FieldSpec:
        if self.enum is not None and (self.type != "string" or len(self.enum) < 1):
            raise ValueError("enum needs type: string and at least one value")
        return self


class TaskSpec(Strict):
    kind: TaskKind = Field("classification", description="what a record is made of; sets default fields and templates")
    description: str = Field(..., min_length=1, description="what a record is")
    role: str | None = Field(None, description='who writes the data: "a mobile phone user"')
    fields: dict[str, str | FieldSpec] = Field(
        default_factory=lambda: dict(DEFAULT_FIELDS["classification"]),
        description="fields the model writes: name -> description, or name -> {description, type, enum}",
    )
    system_prompt: str | None = Field(
        None,
        description="chat: the system message each conversation starts with (a template over "
        "`conditions` and `label`); none: conversations start with the user",
    )
    label_field: str = "label"
    labels: list[str] | dict[str, str] | None = Field(
        None, description="the label set, or label -> description"
    )
    label_weights: dict[str, float] | None = Field(
        None, description="relative share of each label; default: equal"
    )
    max_labels: int = Field(2, ge=1, description="multilabel: the most labels one record carries")
    label_separator: str = Field("|", min_length=1, description="multilabel: joins a record's labels")

    @model_validator(mode="before")
    @classmethod
    def _default_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "fields" not in data:
            kind = data.get("kind", "classification")
            if kind == "free":
                raise ValueError("a task of kind 'free' names its fields")
            if kind in DEFAULT_FIELDS:
                data = {**data, "fields": dict(DEFAULT_FIELDS[kind])}
        return data

    @field_validator("system_prompt")
    @classmethod
    def _system_compiles(cls, value: str | None) -> str | None:
        return template_source(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, Any]) -> dict[str, Any]:
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
        if self.kind == "multilabel":
            if not self.labels:
                raise ValueError("a multilabel task needs labels")
            joined = [label for label in self.label_names if self.label_separator in label]
            if joined:
                raise ValueError(f"label {joined[0]!r} contains the label_separator {self.label_separator!r}")
        if self.system_prompt is not None and self.kind != "chat":
            raise ValueError("system_prompt needs kind: chat")
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

    @property
    def field_specs(self) -> dict[str, FieldSpec]:
        """Every field as a FieldSpec (a plain description is a string field)."""
        return {
            name: spec if isinstance(spec, FieldSpec) else FieldSpec(description=spec)
            for name, spec in self.fields.items()
        }

    @property
    def field_descriptions(self) -> dict[str, str]:
        return {name: spec.description for name, spec in self.field_specs.items()}

    def split_labels(self, label: str | None) -> list[str]:
        """A record's labels: one, or several joined by `label_separator` for multilabel tasks."""
        if label is None:
            return []
        return label.split(self.label_separator) if self.kind == "multilabel" else [label]

    def label_description(self, label: str) -> str | None:
        if isinstance(self.labels, dict):
            return self.labels.get(label) or None
        return None


class DemonstrationsSpec(DatasetSpec):
    """Seed examples (D_sup) to show in each prompt, and how to choose them."""

    k: int = Field(3, ge=0, le=64, description="demonstrations per prompt; 0 = zero-shot")
    selection: Literal["random", "nearest", "mmr", "stratified"] = Field(
        "random",
        description="random; nearest to the query in embedding space; mmr: relevant but "
        "diverse; stratified: spread over the labels",
    )
    same_label: bool = Field(True, description="draw demonstrations of the record's label")
    query: str = Field(
        "conditions",
        description="what nearest/mmr compare with: `conditions` (the record's label "
        "description and condition values) or the name of a field the record already has",
    )
    mmr_lambda: float = Field(0.5, ge=0, le=1, description="mmr: 1 = pure relevance, 0 = pure diversity")
    candidates: int | None = Field(
        None, ge=1, description="nearest: draw the k at random from this many nearest (default: exactly the k nearest)"
    )


class TemplatesSpec(Strict):
    """Jinja2 templates (sandboxed, strict) that override the task kind's defaults."""

    system: str | None = None
    instruction: str | None = None
    demonstration: str | None = None

    @field_validator("system", "instruction", "demonstration")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return template_source(value)


class GenerationSpec(Strict):
    records: int = Field(100, ge=1, le=10_000_000)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(128, ge=1, le=131_072)
    seed: int = 0
    samples_per_prompt: int = Field(1, ge=1, le=64)
    stop: list[str] | None = None
    templates: TemplatesSpec = Field(default_factory=TemplatesSpec)
    output: Literal["auto", "text", "json"] = Field(
        "auto",
        description="json: ask for JSON following the fields' schema (constrained where the "
        "server can); text: a plain-text layout; auto: json for several or typed fields",
    )
    condition_sampling: Literal["independent", "coverage"] = Field(
        "independent",
        description="coverage: balance every combination of label and condition values "
        "instead of drawing each condition on its own",
    )
    prompt_order: Literal["conditions_in_system", "shared_first"] = Field(
        "conditions_in_system",
        description="shared_first: with demonstrations, a record's conditions go in its last turn, not the "
        "system message, so every prompt starts with the same system message and shared demonstrations "
        "(providers' prompt caching applies); conditions_in_system: as before (the cache keys of earlier runs)",
    )


__all__ = [
    "DEFAULT_FIELDS",
    "ConditionValues",
    "DemonstrationsSpec",
    "FieldSpec",
    "GenerationSpec",
    "TaskSpec",
    "TemplatesSpec",
    "template_source",
    "validate_conditions",
]
