"""The evaluation half of a recipe: direct measures and indirect (train, then test) ones."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .common import DatasetSpec, Strict


class DiversitySpec(Strict):
    """Lexical diversity of the curated texts: distinct-n for each n."""

    stage: Literal["diversity"] = "diversity"
    n: list[int] = Field(default_factory=lambda: [1, 2, 3])
    field: str | None = None


class DownstreamSpec(Strict):
    """Train a small classifier on the curated data and score it on real labelled data."""

    stage: Literal["downstream"] = "downstream"
    test: DatasetSpec
    trainer: Literal["embedding_logreg"] = "embedding_logreg"
    field: str | None = None
    seed: int = 0


EvaluationStage = Annotated[Union[DiversitySpec, DownstreamSpec], Field(discriminator="stage")]


def default_evaluation() -> list[Strict]:
    return [DiversitySpec()]
