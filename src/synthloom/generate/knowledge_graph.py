"""A knowledge graph whose facts ground generated text: triples or entities from a file.

Triples have a subject, a relation and an object (columns
subject/relation/object, head/relation/tail or source/relation/target);
entities have a name and optionally a description. Each fact becomes one
sentence-like string ("Paris capital of France"). With `per_record: k > 1`
and `connected: true` a record gets a small connected piece of the graph:
the first fact at random, then facts that share an entity with those
already drawn, so that the text can tie them together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..recipe import KnowledgeGraphSpec
from ..records import DataError, read_rows

_TRIPLE_COLUMNS = (("subject", "relation", "object"), ("head", "relation", "tail"), ("source", "relation", "target"),
                   ("subject", "predicate", "object"))
_ENTITY_COLUMNS = ("entity", "name")


@dataclass(frozen=True)
class Fact:
    text: str
    entities: tuple[str, ...]


def load_facts(spec: KnowledgeGraphSpec) -> list[Fact]:
    rows = read_rows(spec.path, spec.format, spec.columns)
    if not rows:
        raise DataError(f"{spec.path}: no facts")
    columns = set(rows[0])
    for names in _TRIPLE_COLUMNS:
        if set(names) <= columns:
            return [_triple(row, names, spec.path, i) for i, row in enumerate(rows)]
    for name in _ENTITY_COLUMNS:
        if name in columns:
            return [_entity(row, name, spec.path, i) for i, row in enumerate(rows)]
    raise DataError(
        f"{spec.path}: expected columns subject/relation/object (or head/relation/tail) "
        f"or entity[/description]; found {', '.join(sorted(columns))}"
    )


def _cell(row: dict[str, Any], name: str, path: str, i: int) -> str:
    value = str(row.get(name) or "").strip()
    if not value:
        raise DataError(f"{path}: row {i + 1} has no {name}")
    return value


def _triple(row: dict[str, Any], names: tuple[str, str, str], path: str, i: int) -> Fact:
    subject, relation, obj = (_cell(row, n, path, i) for n in names)
    return Fact(f"{subject} {relation.replace('_', ' ')} {obj}", (subject.casefold(), obj.casefold()))


def _entity(row: dict[str, Any], name: str, path: str, i: int) -> Fact:
    entity = _cell(row, name, path, i)
    description = str(row.get("description") or "").strip()
    return Fact(f"{entity}: {description}" if description else entity, (entity.casefold(),))


class FactSampler:
    """Draws `per_record` facts for a record, joined with "; "."""

    def __init__(self, facts: list[Fact], per_record: int, connected: bool):
        self.facts = facts
        self.per_record = min(per_record, len(facts))
        self.connected = connected
        self.by_entity: dict[str, list[int]] = {}
        for i, fact in enumerate(facts):
            for entity in fact.entities:
                self.by_entity.setdefault(entity, []).append(i)

    def __call__(self, rng: random.Random) -> str:
        chosen = [rng.randrange(len(self.facts))]
        while len(chosen) < self.per_record:
            neighbours: list[int] = []
            if self.connected:
                for i in chosen:
                    for entity in self.facts[i].entities:
                        neighbours.extend(j for j in self.by_entity[entity] if j not in chosen and j not in neighbours)
            pool = neighbours or [j for j in range(len(self.facts)) if j not in chosen]
            chosen.append(rng.choice(pool))
        return "; ".join(self.facts[i].text for i in chosen)


__all__ = ["Fact", "FactSampler", "load_facts"]
