"""Multi-step generation in a recipe: sample-wise `steps` and `dialogue`, dataset-wise `rounds`.

    steps:                          # each step one call, over the fields of earlier steps
      - {name: question, fields: [context, question]}
      - {name: reasoning, fields: [reasoning], keep: false}     # chain of thought, dropped
      - {name: answer, fields: [answer]}

    dialogue: {turns: 6}            # role-play: user persona and assistant, one call per turn

    rounds:                         # generate, curate, measure, re-allocate; repeat
      count: 3
      cells: [label, topic]
      strategy: self_instruct       # or quota, evol_instruct
      curation: [{stage: exact_dedup}]
      validation: {path: dev.jsonl} # where the loop's per-class errors are measured (never the test set)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .common import DatasetSpec, Strict
from .curation import CurationStage, EvolEliminationSpec, ExactDedupSpec, NoveltySpec

EvolOperation = Literal["add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "broaden"]
from .generation import template_source


class StepSpec(Strict):
    """One call of a record's chain: writes `fields`, seeing the fields earlier steps wrote."""

    name: str = Field(..., min_length=1)
    fields: list[str] = Field(..., min_length=1, description="fields this step writes (the label field too)")
    instruction: str | None = Field(None, description="template of the step's instruction; default per task kind")
    keep: bool = Field(True, description="false: the fields are used by later steps, then dropped (chain of thought)")
    output: Literal["auto", "text", "json"] | None = Field(None, description="default: generation.output")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=131_072)
    demonstrations: bool = Field(True, description="show support examples that have these fields")

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError(f"step name {value!r} must be a plain identifier")
        return value

    @field_validator("instruction")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return template_source(value)


class DialogueSpec(Strict):
    """Role-play: a user (persona) and an assistant answer each other for `turns` messages."""

    turns: int = Field(4, ge=2, le=40, description="messages in the conversation, the user's first")
    user: str | None = Field(None, description="template of the user role's system message")
    assistant: str | None = Field(None, description="template of the assistant role's system message")
    opening: str | None = Field(None, description="template that asks the user role for its first message")
    max_tokens: int | None = Field(None, ge=1, le=131_072, description="per message; default generation.max_tokens")

    @field_validator("user", "assistant", "opening")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return template_source(value)


class AllocationWeights(Strict):
    """How much each signal moves the next round's budget towards a cell."""

    rejection: float = Field(1.0, ge=0, description="cells whose records curation mostly rejects")
    repetition: float = Field(1.0, ge=0, description="cells whose accepted records repeat themselves")
    errors: float = Field(1.0, ge=0, description="cells a downstream model gets wrong (when known)")


class RoundsSpec(Strict):
    """Dataset-wise generation: rounds that give the budget to the cells that need it."""

    count: int = Field(3, ge=1, le=100, description="rounds at most; generation.records is the whole budget")
    target: int | None = Field(
        None, ge=1, description="accepted records wanted over all cells; default: generation.records"
    )
    cells: list[str] = Field(
        default_factory=lambda: ["label"], description="what a cell is: `label` and/or condition names"
    )
    strategy: Literal["quota", "self_instruct", "evol_instruct"] = Field(
        "quota",
        description="quota: re-allocate only; self_instruct: accepted records join the "
        "demonstration pool; evol_instruct: rewrite accepted records (Evol-Instruct's in-depth and "
        "in-breadth operations), with its elimination step",
    )
    curation: list[CurationStage] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [ExactDedupSpec()],
        description="stages that decide what a round accepts, run over the pool and the new records; "
        "self_instruct adds the ROUGE-L novelty rule (threshold 0.7) and evol_instruct the "
        "evol_elimination stage unless the list is given",
    )
    synthetic_demos: int = Field(1, ge=0, le=64, description="self_instruct: demonstrations drawn from accepted records")
    evolve_share: float = Field(0.5, ge=0, le=1, description="evol_instruct: share of a later round's records that rewrite accepted ones")
    operations: list[EvolOperation] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["add_constraints", "deepen", "concretize", "increase_reasoning",
                                 "complicate_input", "broaden"],
        min_length=1,
        description="evol_instruct: the operations drawn from, each equally often "
        "(in depth: add_constraints, deepen, concretize, increase_reasoning, complicate_input; in breadth: broaden)",
    )
    weights: AllocationWeights = Field(default_factory=AllocationWeights)
    validation: DatasetSpec | None = Field(
        None, description="real labelled data the closed loop scores on (`weights.errors`); never the test set"
    )
    holdout: float = Field(
        0.2, ge=0, lt=1,
        description="without `validation`: the share of each label's demonstrations held out for the loop "
        "(drawn with generation.seed; not shown as demonstrations); 0 = none",
    )

    @model_validator(mode="after")
    def _novelty_for_self_instruct(self) -> RoundsSpec:
        """Self-Instruct keeps only what is novel against the pool (its ROUGE-L rule)."""
        if self.strategy == "self_instruct" and "curation" not in self.model_fields_set:
            object.__setattr__(self, "curation", [ExactDedupSpec(), NoveltySpec()])
        if self.strategy == "evol_instruct" and "curation" not in self.model_fields_set:
            object.__setattr__(self, "curation", [ExactDedupSpec(), EvolEliminationSpec()])
        return self


class AnnotationSpec(Strict):
    """Label unlabelled inputs: a majority over `samples` answers, and label-token probabilities."""

    input: DatasetSpec = Field(..., description="the unlabelled inputs, with the task's fields as columns")
    samples: int = Field(5, ge=1, le=64, description="answers per input for self-consistency; the first is greedy")
    temperature: float = Field(0.7, ge=0, le=2, description="of the answers after the first")
    logprobs: bool = Field(True, description="ask for token log-probabilities (the greedy answer)")
    top_logprobs: int = Field(5, ge=0, le=20)
    max_tokens: int = Field(16, ge=1, le=4096)
    instruction: str | None = Field(None, description="template of the labelling instruction")

    @field_validator("instruction")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return template_source(value)


DEFAULT_AUGMENT_CONDITIONS: dict[str, list[str]] = {
    "style": ["plainer words", "more casual", "more formal", "with a typo or two"],
    "persona": ["someone in a hurry", "someone older", "a younger person", "someone annoyed"],
    "length": ["shorter", "about the same length", "a little longer"],
}


class AugmentationSpec(Strict):
    """Rewrite each real labelled example under conditions (style, persona, length); a rewrite keeps its label."""

    input: DatasetSpec | None = Field(
        None, description="the real labelled examples to rewrite; default: the recipe's demonstrations"
    )
    per_example: int = Field(1, ge=1, le=20, description="rewrites of each example")
    per_label: int | None = Field(None, ge=1, description="rewrite at most this many examples of each label (in file order)")
    conditions: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_AUGMENT_CONDITIONS.items()},
        description="each rewrite draws one value of each",
    )
    temperature: float = Field(0.9, ge=0, le=2)
    max_tokens: int = Field(80, ge=1, le=4096)
    instruction: str | None = Field(None, description="template of the rewriting instruction (text, conditions, label)")

    @field_validator("instruction")
    @classmethod
    def _compiles_instruction(cls, value: str | None) -> str | None:
        return template_source(value)

    @field_validator("conditions")
    @classmethod
    def _non_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        empty = [k for k, v in value.items() if not v]
        if empty:
            raise ValueError(f"conditions {empty} have no values")
        return value


__all__ = ["AllocationWeights", "AnnotationSpec", "AugmentationSpec", "DialogueSpec", "RoundsSpec", "StepSpec"]
