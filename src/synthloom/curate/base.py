"""The shape every curation stage has, the registry of stages, and the pipeline.

A stage takes records and returns them with its decision written on each:
`flags[stage]` (keep, drop, relabel, reweight), `scores[stage]` and, where
it helps a person, `reasons[stage]`. The pipeline hands each stage only the
records every earlier stage kept, and counts the funnel as it goes, so a
report can say why each record was kept, dropped, re-weighted or relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..recipe import StageSpec
from ..records import Record

KEEP, DROP, RELABEL, REWEIGHT = "keep", "drop", "relabel", "reweight"


class Stage(Protocol):
    name: str

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]: ...


@dataclass
class CurationContext:
    """What stages may need beyond their own settings."""

    text_field: str = "text"
    label_field: str = "label"
    extras: dict[str, Any] = field(default_factory=dict)


_STAGES: dict[type, Callable[[Any, CurationContext], Stage]] = {}


def stage_for(spec_class: type) -> Callable[[Any], Any]:
    """Class decorator: the stage that implements `spec_class`."""

    def decorate(cls: Any) -> Any:
        _STAGES[spec_class] = cls
        return cls

    return decorate


def build_stage(spec: StageSpec, context: CurationContext) -> Stage:
    try:
        factory = _STAGES[type(spec)]
    except KeyError:
        raise ValueError(f"no curation stage implements {type(spec).__name__}") from None
    return factory(spec, context)


def is_dropped(record: Record) -> bool:
    return any(flag == DROP for flag in record.flags.values())


@dataclass
class FunnelStep:
    stage: str
    seen: int
    kept: int
    dropped: int
    relabelled: int
    reweighted: int
    examples: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class CurationResult:
    kept: list[Record]
    dropped: list[Record]
    funnel: list[FunnelStep]


def run_stages(records: Sequence[Record], stages: Sequence[Stage], examples: int = 3) -> CurationResult:
    """Apply stages in order, each to the records all earlier stages kept."""
    current = list(records)
    dropped: list[Record] = []
    funnel = []
    for stage in stages:
        out = list(stage(current))
        kept = [r for r in out if r.flags.get(stage.name) != DROP]
        lost = [r for r in out if r.flags.get(stage.name) == DROP]
        flags = [r.flags.get(stage.name) for r in out]
        funnel.append(
            FunnelStep(
                stage=stage.name,
                seen=len(current),
                kept=len(kept),
                dropped=len(lost),
                relabelled=flags.count(RELABEL),
                reweighted=flags.count(REWEIGHT),
                examples=[
                    {"id": r.id, "reason": r.reasons.get(stage.name, ""), "text": r.text()[:120]}
                    for r in lost[:examples]
                ],
            )
        )
        dropped.extend(lost)
        current = kept
    return CurationResult(kept=current, dropped=dropped, funnel=funnel)
