"""The curation half of a recipe: an ordered list of stages, each `stage: <name>`.

Each stage's settings are a small strict model here; the stage that acts on
them lives in `synthloom.curate`. Keeping the settings here lets a recipe be
validated (with line numbers) without importing any curation code.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .common import Strict


class StageSpec(Strict):
    field: str | None = Field(None, description="the text field to look at; default: the first")


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


CURATION_STAGES: tuple[type[StageSpec], ...] = (ExactDedupSpec, LengthFilterSpec)

CurationStage = Annotated[Union[ExactDedupSpec, LengthFilterSpec], Field(discriminator="stage")]


def default_curation() -> list[StageSpec]:
    return [ExactDedupSpec(), LengthFilterSpec(min_chars=5)]
