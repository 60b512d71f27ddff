"""A concept tree: subtopics of a root topic, expanded by the model, kept in an editable file.

A flat list of topics runs out quickly and leans to what the model finds
typical; a tree (banking -> cards -> a card stuck in an ATM) reaches
specific corners, and drawing its leaves spreads records over them. The
model expands one node per call (a JSON list of `breadth` subtopics), level
by level to `depth`. The tree is saved as YAML: nested mappings, leaves as
list items, so that a person can prune or extend it and pass it back as
the condition's `path` (which then costs no model calls).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..llm import Completion, InvalidAnswer, Request, RunAborted, Scheduler
from ..recipe import ConceptTreeSpec, FieldSpec
from ..records import DataError, atomic_write_text, read_text
from .schema import JsonAnswerParser, output_schema

SEPARATOR = " > "


@dataclass
class ConceptNode:
    name: str
    children: list[ConceptNode] = field(default_factory=list)

    def paths(self, leaves_only: bool = True) -> list[str]:
        """Every node below this one (or every leaf) as `root > child > grandchild`."""
        out: list[str] = []

        def walk(node: ConceptNode, prefix: tuple[str, ...]) -> None:
            for child in node.children:
                here = prefix + (child.name,)
                if not leaves_only or not child.children:
                    out.append(SEPARATOR.join(here))
                walk(child, here)

        walk(self, (self.name,))
        return out

    def to_yaml_value(self) -> Any:
        if all(not c.children for c in self.children):
            return [c.name for c in self.children]
        return {c.name: c.to_yaml_value() if c.children else [] for c in self.children}


def tree_from_yaml(data: Any, path: str) -> ConceptNode:
    if not isinstance(data, dict) or len(data) != 1:
        raise DataError(f"{path}: a concept tree is a mapping with one root topic")
    (name, below), = data.items()
    return ConceptNode(str(name), _children(below, path))


def _children(value: Any, path: str) -> list[ConceptNode]:
    if value in (None, [], {}):
        return []
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):
                out.extend(ConceptNode(str(k), _children(v, path)) for k, v in item.items())
            else:
                out.append(ConceptNode(str(item)))
        return out
    if isinstance(value, dict):
        return [ConceptNode(str(k), _children(v, path)) for k, v in value.items()]
    raise DataError(f"{path}: unexpected {type(value).__name__} in the concept tree: {value!r}")


def read_tree(path: str | Path) -> ConceptNode:
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML") from None
    return tree_from_yaml(data, str(path))


def write_tree(path: str | Path, tree: ConceptNode, note: str) -> None:
    text = f"# {note}\n# Edit freely (prune, rename, add topics) and pass this file back as `path`.\n"
    text += yaml.safe_dump({tree.name: tree.to_yaml_value()}, sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(path, text)


class ConceptTreeExpander:
    """Grows a tree from `spec.root` with the model, one call per node."""

    def __init__(self, spec: ConceptTreeSpec, context: str, seed: int, temperature: float = 0.7):
        self.spec = spec
        self.context = context
        self.seed = seed
        self.temperature = temperature
        fields = {"subtopics": FieldSpec(description="subtopics", type="list")}
        schema = output_schema(fields)
        schema["properties"]["subtopics"].update(
            {"items": {"type": "string", "minLength": 2, "maxLength": 60}, "minItems": spec.breadth, "maxItems": spec.breadth}
        )
        self.schema = schema
        self._parse_json = JsonAnswerParser(fields, fallback=lambda c: {"subtopics": c.text})

    def request(self, path: tuple[str, ...]) -> Request:
        topic = SEPARATOR.join(path)
        prompt = (
            f"Topic: {topic}\n"
            f"Context: {self.context}\n"
            f"List {self.spec.breadth} different, specific subtopics of \"{path[-1]}\", "
            "each a few words. Answer in JSON as {\"subtopics\": [...]}."
        )
        digest = hashlib.sha256(f"{self.seed}:{topic}:concept".encode()).digest()
        return Request(
            messages=(
                {"role": "system", "content": "You organise topics into clear, distinct subtopics."},
                {"role": "user", "content": prompt},
            ),
            temperature=self.temperature,
            max_tokens=40 + 24 * self.spec.breadth,
            seed=int.from_bytes(digest[:4], "big") % 2**31,
            json_schema=self.schema,
        )

    def parse(self, path: tuple[str, ...]) -> Any:
        seen = {p.casefold() for p in path}

        def parse(completion: Completion) -> list[str]:
            names: list[str] = []
            for name in self._parse_json(completion)["subtopics"]:
                name = " ".join(name.strip(" .-*\"'").split())
                if name and name.casefold() not in seen and name.casefold() not in {n.casefold() for n in names}:
                    names.append(name)
            if len(names) < 2:
                raise InvalidAnswer(f"fewer than 2 distinct subtopics of {path[-1]!r}: {completion.text[:60]!r}")
            return names[: self.spec.breadth]

        return parse

    async def expand(self, scheduler: Scheduler) -> ConceptNode:
        root = ConceptNode(self.spec.root)
        level = [(root, (root.name,))]
        for _ in range(self.spec.depth):
            outcomes = await asyncio.gather(
                *(scheduler.complete(self.request(path), self.parse(path)) for _, path in level)
            )
            below = []
            for (node, path), outcome in zip(level, outcomes):
                if not outcome.ok:
                    continue  # this node stays a leaf
                node.children = [ConceptNode(name) for name in outcome.value]
                below.extend((child, path + (child.name,)) for child in node.children)
            level = below
        if not root.children:
            raise RunAborted(f"stopping: the model gave no usable subtopics of {self.spec.root!r}")
        return root


__all__ = ["ConceptNode", "ConceptTreeExpander", "read_tree", "tree_from_yaml", "write_tree"]
