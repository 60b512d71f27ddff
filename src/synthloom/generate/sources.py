"""Resolving a recipe's conditions into values to draw: lists, weights, trees, graphs, personas.

Plain lists and weights are used as they are. A knowledge graph is read
from its file. A concept tree or a persona list is read from its `path`
when that file exists; otherwise the model builds it (through the
scheduler, so the calls are cached and a rerun builds the same one), and
it is written to `path` (when given) and to the run directory under
`conditions/`, for the user to read, edit and reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..llm import Scheduler
from ..recipe import ConceptTreeSpec, KnowledgeGraphSpec, PersonasSpec, Recipe
from .concept_tree import ConceptTreeExpander, read_tree, write_tree
from .conditions import ConditionDraw
from .knowledge_graph import FactSampler, load_facts
from .personas import PersonaGenerator, read_personas, write_personas


class NeedsModel(RuntimeError):
    """A condition source must be built by the model before records can be planned."""


@dataclass
class ResolvedConditions:
    draws: dict[str, ConditionDraw] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _static(spec: Any) -> ConditionDraw | None:
    """What to draw for a condition that needs no model; None when it does."""
    if isinstance(spec, KnowledgeGraphSpec):
        facts = load_facts(spec)
        if spec.per_record == 1:
            return [f.text for f in facts]
        return FactSampler(facts, spec.per_record, spec.connected)
    if isinstance(spec, ConceptTreeSpec):
        if spec.path and Path(spec.path).exists():
            return read_tree(spec.path).paths(spec.leaves_only)
        return None
    if isinstance(spec, PersonasSpec):
        if spec.values:
            return list(spec.values)
        if spec.path and Path(spec.path).exists():
            return read_personas(spec.path)
        return None
    return spec


def _size(draw: ConditionDraw) -> int:
    return len(draw.facts) if isinstance(draw, FactSampler) else len(draw)  # type: ignore[arg-type]


def resolve_offline(recipe: Recipe) -> ResolvedConditions:
    """The conditions when none needs the model; NeedsModel otherwise."""
    resolved = ResolvedConditions()
    for key, spec in recipe.conditions.items():
        draw = _static(spec)
        if draw is None:
            raise NeedsModel(f"condition {key!r} is built by the model; run the recipe (or give its `path`)")
        resolved.draws[key] = draw
        resolved.sizes[key] = _size(draw)
    return resolved


async def resolve_conditions(recipe: Recipe, scheduler: Scheduler, out: Path | None) -> ResolvedConditions:
    """Every condition as something to draw from; model-built sources are built and saved."""
    resolved = ResolvedConditions()
    context = recipe.task.description
    seed = recipe.generation.seed
    for key, spec in recipe.conditions.items():
        draw = _static(spec)
        if draw is None and isinstance(spec, ConceptTreeSpec):
            tree = await ConceptTreeExpander(spec, context, seed).expand(scheduler)
            note = f"concept tree for condition {key!r}, expanded by the model from {spec.root!r}"
            for target in _targets(spec.path, out, key):
                write_tree(target, tree, note)
                resolved.files.setdefault(key, str(target))
            draw = tree.paths(spec.leaves_only)
        elif draw is None:
            draw = await PersonaGenerator(spec, context, seed).generate(scheduler)
            note = f"personas for condition {key!r}, invented by the model"
            for target in _targets(spec.path, out, key):
                write_personas(target, draw, note)
                resolved.files.setdefault(key, str(target))
        resolved.draws[key] = draw
        resolved.sizes[key] = _size(draw)
    return resolved


def _targets(path: str | None, out: Path | None, key: str) -> list[Path]:
    targets = [Path(path)] if path else []
    if out is not None:
        targets.append(out / "conditions" / f"{key}.yaml")
    return targets


__all__ = ["NeedsModel", "ResolvedConditions", "resolve_conditions", "resolve_offline"]
