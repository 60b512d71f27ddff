"""The shape every curation stage has, the registry of stages, and the pipeline.

A stage takes records and returns them with its decision written on each:
`flags[stage]` (keep, drop, relabel, reweight), `scores[stage]` and, where
it helps a person, `reasons[stage]`. The pipeline hands each stage only the
records every earlier stage kept, and counts the funnel as it goes, so a
report can say why each record was kept, dropped, re-weighted or relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ..embed import Embedder
from ..llm import spend
from ..recipe import StageSpec
from ..records import Record

KEEP, DROP, RELABEL, REWEIGHT = "keep", "drop", "relabel", "reweight"


class Stage(Protocol):
    name: str

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]: ...


@dataclass
class CurationContext:
    """What stages may need beyond their own settings.

    `labels` is the task's label set (empty: the labels found in the records);
    `description` and `label_descriptions` tell model-backed stages what a
    record is; their answers are kept in the SQLite cache at `cache_path`
    (none: not kept), so that a rerun pays for nothing. `support` is the
    recipe's labelled demonstrations, the default reference of the
    support-anchored stages; `label_shares` the task's stated share of each
    label (`task.label_weights`; empty: equal), the class mix a support-scored
    choice is judged under.
    """

    text_field: str = "text"
    label_field: str = "label"
    labels: list[str] = field(default_factory=list)
    label_descriptions: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    cache_path: Path | None = None
    progress: bool = False
    embedder: Embedder | None = None
    backend_factory: Callable[[Any], Any] | None = None  # default: synthloom.llm.create_backend
    extras: dict[str, Any] = field(default_factory=dict)
    support: Any = None  # the recipe's real support set (its demonstrations' DatasetSpec), for support_* stages
    label_shares: dict[str, float] = field(default_factory=dict)  # the task's stated share of each label (none: equal)

    def get_embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = Embedder.shared()
        return self.embedder

    def label_set(self, records: Sequence[Record]) -> list[str]:
        """The task's labels, or else every label the records carry, sorted."""
        return list(self.labels) or sorted({r.label for r in records if r.label is not None})


class SpecStage:
    """The usual stage constructor: its settings, the context, and the text field it reads."""

    name = ""

    def __init__(self, spec: Any, context: CurationContext):
        self.spec = spec
        self.context = context
        self.field = spec.field or context.text_field


def mark_unlabelled(records: Sequence[Record], stage: str) -> None:
    """Stages that judge labels keep the records that have none, and say so."""
    for record in records:
        if record.label is None:
            record.decide(stage, KEEP, None, "no label")


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
    notes: dict[str, Any] | None = None  # what a stage decided for the whole set (e.g. support_choice's pick)

    def to_json(self) -> dict[str, Any]:
        out = self.__dict__.copy()
        if out["notes"] is None:
            del out["notes"]
        return out


@dataclass
class CurationResult:
    kept: list[Record]
    dropped: list[Record]
    funnel: list[FunnelStep]


def _examples(records: Sequence[Record], stage: str, per_flag: int) -> list[dict[str, str]]:
    """A few records per decision other than keep: the funnel's "why"."""
    out: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    for r in records:
        flag = r.flags.get(stage)
        if flag in (None, KEEP) or counts.get(flag, 0) >= per_flag:
            continue
        counts[flag] = counts.get(flag, 0) + 1
        out.append({"id": r.id, "flag": flag, "reason": r.reasons.get(stage, ""), "text": r.text()[:120]})
    return out


class NotEnoughData(ValueError):
    """A stage cannot judge these records (e.g. fewer than two labels left); it keeps them all."""


def run_stages(records: Sequence[Record], stages: Sequence[Stage], examples: int = 3) -> CurationResult:
    """Apply stages in order, each to the records all earlier stages kept.

    A stage that finds too little to work with (NotEnoughData) keeps every
    record and says why on each, rather than stopping the run.
    """
    current = list(records)
    dropped: list[Record] = []
    funnel = []
    for stage in stages:
        try:
            with spend.stage(f"curation.{stage.name}"):
                out = list(stage(current))
        except NotEnoughData as exc:
            for record in current:
                record.decide(stage.name, KEEP, None, f"not judged: {exc}")
            out = current
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
                examples=_examples(out, stage.name, examples),
                notes=getattr(stage, "summary", None),
            )
        )
        dropped.extend(lost)
        current = kept
    return CurationResult(kept=current, dropped=dropped, funnel=funnel)
