"""Chat (SFT) records: a conversation in the OpenAI/TRL `messages` form.

A `chat` task writes its fields as any other (one call, `steps`, or the
role-play of `dialogue`); this module turns what was written into the
conversation a trainer reads: an optional system message (the task's
`system_prompt`, rendered with the record's conditions and label), then the
user and assistant turns. With `dialogue` the turns are the role-play's;
otherwise the first field is the user's message and the last kept field the
assistant's answer. The record keeps its fields (curation reads them) and
gains `messages`.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..recipe import Recipe
from ..templating import render


def system_message(recipe: Recipe, label: str | None, conditions: Mapping[str, Any]) -> str | None:
    """The task's system prompt for one record, or None when the task has none."""
    template = recipe.task.system_prompt
    if template is None:
        return None
    text = render(template, conditions=dict(conditions), label=label,
                  task={"description": recipe.task.description, "role": recipe.task.role})
    return text.strip() or None


def chat_messages(recipe: Recipe, fields: Mapping[str, Any], label: str | None,
                  conditions: Mapping[str, Any]) -> list[dict[str, str]]:
    """The record as `[{role, content}, ...]`: system (if any), then user and assistant turns."""
    system = system_message(recipe, label, conditions)
    out = [{"role": "system", "content": system}] if system else []
    turns = fields.get("turns")
    if isinstance(turns, list):
        out += [{"role": str(t["role"]), "content": str(t["content"])} for t in turns]
        return out
    names = [n for n in recipe.task.fields if n in fields]
    if len(names) >= 2:
        out.append({"role": "user", "content": str(fields[names[0]])})
        out.append({"role": "assistant", "content": str(fields[names[-1]])})
    return out


__all__ = ["chat_messages", "system_message"]
