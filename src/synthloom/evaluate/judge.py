"""A language model as judge: requests for verdicts, sent through the scheduler and its cache.

Faithfulness and pairwise (open) evaluation both ask a model for small JSON
verdicts. `Judge` runs those requests with everything generation has:
bounded concurrency, retries, re-asks of unusable answers, and a SQLite
completion cache (in the run directory), so rerunning an evaluation pays
for nothing it has already asked. Verdicts are asked for as JSON that
follows a schema (constrained decoding where the backend has it) and read
leniently where it does not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from ..llm import Backend, BackendConfig, Completion, InvalidAnswer, Outcome, Request, Session

_OBJECT = re.compile(r"\{.*?\}", re.S)


class Judge:
    """Sends judge requests for one backend; answers are cached in `cache_path` when given."""

    def __init__(
        self,
        config: BackendConfig,
        cache_path: str | Path | None = None,
        backend: Backend | None = None,
        progress: bool = False,
    ):
        self.config = config
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.backend = backend
        self.progress = progress
        self.stats: dict[str, Any] = {}

    def ask(self, requests: Sequence[Request], parse: Callable[[Completion], Any], description: str = "judging") -> list[Outcome]:
        """Answer every request (in order), each parsed by `parse`; failures are Outcomes with an error."""
        session = Session(self.backend or self.config, self.cache_path, progress=self.progress)
        outcomes = session.ask_all(requests, parse, description)
        self.stats = session.stats.to_json()
        return outcomes


def verdict_request(system: str, user: str, schema: dict[str, Any], max_tokens: int, seed: int) -> Request:
    """A deterministic (temperature 0) request for a JSON verdict."""
    return Request(
        messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
        temperature=0.0,
        max_tokens=max_tokens,
        seed=seed,
        json_schema=schema,
    )


def enum_schema(properties: dict[str, Sequence[str]]) -> dict[str, Any]:
    """A JSON schema of an object whose every key takes one of a few strings."""
    return {
        "type": "object",
        "properties": {k: {"type": "string", "enum": list(v)} for k, v in properties.items()},
        "required": list(properties),
    }


def parse_verdict(text: str, properties: dict[str, Sequence[str]]) -> dict[str, str]:
    """Read `{"key": "value", ...}` with each value among its allowed ones; InvalidAnswer otherwise.

    Takes the first JSON object in the text; values are matched without
    regard to case, spaces or quotes.
    """
    data: Any = None
    for candidate in [text.strip(), *(_OBJECT.findall(text))]:
        try:
            data = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(data, dict):
        raise InvalidAnswer(f"the judge's answer is not a JSON object: {text[:80]!r}")
    out = {}
    for key, allowed in properties.items():
        value = str(data.get(key, "")).strip().strip("\"'").lower()
        match = next((a for a in allowed if a.lower() == value), None)
        if match is None:
            raise InvalidAnswer(f"the judge's answer has {key}={data.get(key)!r}, expected one of {list(allowed)}")
        out[key] = match
    return out


__all__ = ["Judge", "enum_schema", "parse_verdict", "verdict_request"]
