"""The one Jinja2 environment that renders prompts: sandboxed and strict.

A recipe's template is data, not code: the sandbox refuses attribute tricks
that reach Python internals, and an undefined variable is an error (not an
empty string that silently drops a condition from every prompt).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["humanize"] = lambda s: str(s).replace("_", " ")
    return env


@lru_cache(maxsize=256)
def compile_template(source: str) -> jinja2.Template:
    try:
        return environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on its line {exc.lineno}: {exc.message}") from None


def render(source: str, **variables: Any) -> str:
    try:
        return compile_template(source).render(**variables).strip()
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template uses an undefined variable: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"template tried something the sandbox forbids: {exc}") from None
