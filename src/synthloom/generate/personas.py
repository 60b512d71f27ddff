"""Personas: who writes each record, listed by the user or invented by the model and saved.

Writing "as a retired nurse in Leeds" or "as a student who just moved
abroad" pulls a model away from its one default voice. Generated personas
come from one call each (seeded, with a varied age as a nudge), are
de-duplicated, and saved as a YAML list the user can edit and reuse.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import yaml

from ..llm import Request, RunAborted, Scheduler
from ..recipe import PersonasSpec
from ..records import DataError, atomic_write_text, read_text
from .parse import AnswerParser

_AGES = (19, 23, 27, 31, 36, 42, 48, 55, 63, 71)


def read_personas(path: str | Path) -> list[str]:
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        raise DataError(f"{path}: not valid YAML") from None
    if not isinstance(data, list) or not data or not all(isinstance(p, str) and p.strip() for p in data):
        raise DataError(f"{path}: expected a YAML list of persona descriptions")
    return [p.strip() for p in data]


def write_personas(path: str | Path, personas: list[str], note: str) -> None:
    text = f"# {note}\n# Edit freely and pass this file back as `path`.\n"
    text += yaml.safe_dump(personas, allow_unicode=True, width=100)
    atomic_write_text(path, text)


class PersonaGenerator:
    """Invents `spec.generate` distinct personas, one model call each."""

    def __init__(self, spec: PersonasSpec, context: str, seed: int, temperature: float = 1.0):
        self.spec = spec
        self.context = context
        self.seed = seed
        self.temperature = temperature
        self.parse = AnswerParser(["persona"], min_chars=12)

    def request(self, i: int) -> Request:
        who = f"who {self.spec.about}" if self.spec.about else f"who might write {self.context}"
        age = _AGES[(i * 7 + self.seed) % len(_AGES)]
        prompt = (
            f"Describe one person {who}, aged about {age}, in one sentence: "
            "their first name, job or situation, and one detail of their life."
        )
        digest = hashlib.sha256(f"{self.seed}:{i}:persona".encode()).digest()
        return Request(
            messages=({"role": "system", "content": "You invent realistic, varied people."},
                      {"role": "user", "content": prompt}),
            temperature=self.temperature,
            max_tokens=60,
            seed=int.from_bytes(digest[:4], "big") % 2**31,
            sample=i,
        )

    async def generate(self, scheduler: Scheduler) -> list[str]:
        n = self.spec.generate or 0
        outcomes = await asyncio.gather(*(scheduler.complete(self.request(i), self.parse) for i in range(n)))
        personas: list[str] = []
        seen: set[str] = set()
        for outcome in outcomes:
            if outcome.ok:
                text = outcome.value["persona"]
                if text.casefold() not in seen:
                    seen.add(text.casefold())
                    personas.append(text)
        if not personas:
            raise RunAborted("stopping: the model gave no usable personas")
        return personas


__all__ = ["PersonaGenerator", "read_personas", "write_personas"]
