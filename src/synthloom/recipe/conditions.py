"""Condition values e_condition in a recipe: plain lists, weights, and model- or file-built sources.

    conditions:
      topic: [money, food, travel]              # equally likely
      tone: {casual: 3, urgent: 1}              # weighted
      subtopic: {source: concept_tree, root: banking questions, depth: 2, breadth: 4}
      facts: {source: knowledge_graph, path: data/facts.tsv, per_record: 2}
      persona: {source: personas, generate: 12, about: customers of a bank}

Every source turns into a list of values before planning (the leaves of the
tree, the facts of the graph, the personas); the value drawn is stored on
each record like any other condition. Sources the model builds are saved to
a file the user can read, edit and pass back as `path`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .common import Strict, resolve_path

SOURCES = ("concept_tree", "knowledge_graph", "personas")


class ConceptTreeSpec(Strict):
    """A tree of subtopics under `root`, expanded by the model `depth` levels deep, `breadth` wide."""

    source: Literal["concept_tree"] = "concept_tree"
    root: str = Field(..., min_length=1, description="the topic at the top of the tree")
    depth: int = Field(2, ge=1, le=5)
    breadth: int = Field(4, ge=2, le=20)
    path: str | None = Field(
        None, description="YAML file of the tree: read when it exists, else written after expansion"
    )
    leaves_only: bool = Field(True, description="draw leaves only (else every node below the root)")

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))


class KnowledgeGraphSpec(Strict):
    """Facts from a TSV/CSV/JSONL file of triples (subject, relation, object) or of entities."""

    source: Literal["knowledge_graph"] = "knowledge_graph"
    path: str = Field(..., description="triples: subject/relation/object (or head/relation/tail); entities: entity[, description]")
    format: Literal["auto", "jsonl", "csv", "tsv"] = "auto"
    columns: list[str] | None = Field(None, description="column names for a file without a header")
    per_record: int = Field(1, ge=1, le=10, description="facts drawn for each record")
    connected: bool = Field(True, description="draw facts that share an entity with the first one")

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        path = resolve_path(value, info)
        if not path.exists():
            raise ValueError(f"file not found: {path}")
        return str(path)


class PersonasSpec(Strict):
    """Who writes each record: a given list, a file, or personas the model invents."""

    source: Literal["personas"] = "personas"
    values: list[str] | None = Field(None, description="the personas, one sentence each")
    generate: int | None = Field(None, ge=1, le=1000, description="how many personas the model invents")
    about: str | None = Field(None, description='generated personas are people who ... ("shop online")')
    path: str | None = Field(
        None, description="YAML list of personas: read when it exists, else written after generation"
    )

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))

    @field_validator("generate")
    @classmethod
    def _one_way(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("values"):
            raise ValueError("give either values or generate, not both")
        return value

    @model_validator(mode="after")
    def _some_personas(self) -> PersonasSpec:
        if not self.values and not self.generate and not self.path:
            raise ValueError("personas need values, generate: N, or a path to a saved list")
        return self


ConditionSource = Union[ConceptTreeSpec, KnowledgeGraphSpec, PersonasSpec]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return f"source[{value['source']}]" if "source" in value else "dict[weights]"
    if isinstance(value, Strict):
        return f"source[{value.source}]"  # type: ignore[attr-defined]
    return "list[values]"


def _known_source(value: Any) -> Any:
    if isinstance(value, dict) and "source" in value and value["source"] not in SOURCES:
        raise ValueError(f"unknown source {value['source']!r}; expected one of {', '.join(SOURCES)}")
    return value


# Tag names carry brackets so that recipe errors point at the user's keys, not at the tag.
ConditionValues = Annotated[
    Union[
        Annotated[list[str], Tag("list[values]")],
        Annotated[dict[str, float], Tag("dict[weights]")],
        Annotated[ConceptTreeSpec, Tag("source[concept_tree]")],
        Annotated[KnowledgeGraphSpec, Tag("source[knowledge_graph]")],
        Annotated[PersonasSpec, Tag("source[personas]")],
    ],
    Discriminator(_kind),
    BeforeValidator(_known_source),
]


def validate_conditions(value: dict[str, Any]) -> dict[str, Any]:
    for key, values in value.items():
        if not key.isidentifier():
            raise ValueError(f"condition name {key!r} must be a plain identifier")
        if isinstance(values, Strict):
            continue
        if not values:
            raise ValueError(f"condition {key!r} has no values")
        if isinstance(values, dict):
            if any(w < 0 for w in values.values()) or not any(values.values()):
                raise ValueError(f"weights of condition {key!r} must be non-negative, not all zero")
    return value
