"""The prompt E(e_task, e_condition, e_demo) as chat messages.

The task specification becomes the system message; each demonstration
becomes a pair of turns (the instruction for its label, then its text as
the assistant's answer), and the record's own instruction, with its label
and conditions, comes last. Small instruct models follow a pattern shown as
earlier turns far better than one described in words.

Every part is a Jinja2 template (see `synthloom.templating`); a recipe can
override any of them under `generation.templates`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..recipe import TaskSpec, TemplatesSpec
from ..records import Record
from ..templating import render

DEFAULT_SYSTEM = (
    "{% if task.role %}You are {{ task.role }}. {% endif %}"
    "You write {{ task.description }}. Each answer is one new, realistic example, "
    "written exactly as it would appear, with no comments before or after it."
)

DEFAULT_INSTRUCTION = """\
Write one example{% if label %} that is {{ label }}{% if label_description %} ({{ label_description }}){% endif %}{% endif %}.
{% for key, value in conditions.items() %}
{{ key | humanize | capitalize }}: {{ value }}
{% endfor %}
{% if task.fields | length > 1 %}
Answer with these lines:
{% for name, description in task.fields.items() %}
{{ name }}: <{{ description }}>
{% endfor %}
{% else %}
Answer with the {{ task.fields.values() | first }} only.
{% endif %}"""

DEFAULT_DEMONSTRATION = """\
{% if task.fields | length > 1 %}
{% for name in task.fields %}
{{ name }}: {{ fields[name] }}
{% endfor %}
{% else %}
{{ fields[task.fields | first] }}
{% endif %}"""


class PromptBuilder:
    """Renders chat messages for one task with its (possibly overridden) templates."""

    def __init__(self, task: TaskSpec, templates: TemplatesSpec | None = None):
        self.task = task
        templates = templates or TemplatesSpec()
        self.system = templates.system or DEFAULT_SYSTEM
        self.instruction = templates.instruction or DEFAULT_INSTRUCTION
        self.demonstration = templates.demonstration or DEFAULT_DEMONSTRATION
        self._task_vars = {
            "description": task.description,
            "role": task.role,
            "fields": dict(task.fields),
            "labels": task.label_names,
            "label_field": task.label_field,
        }
        # Renders are pure functions of their inputs; a run has far fewer
        # distinct (label, conditions) pairs and demonstrations than records.
        self._memo: dict[Any, str] = {}

    def _instruction(self, label: str | None, conditions: Mapping[str, Any]) -> str:
        key = ("instruction", label, tuple(conditions.items()))
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = render(
                self.instruction,
                task=self._task_vars,
                label=label,
                label_description=self.task.label_description(label) if label else None,
                conditions=dict(conditions),
            )
        return text

    def _system(self) -> str:
        text = self._memo.get("system")
        if text is None:
            text = self._memo["system"] = render(self.system, task=self._task_vars)
        return text

    def _answer(self, demo: Record) -> str:
        key = ("demonstration", demo.label, tuple(demo.fields.items()))
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = render(
                self.demonstration, task=self._task_vars, fields=demo.fields, label=demo.label
            )
        return text

    def messages(
        self, label: str | None, conditions: Mapping[str, Any], demonstrations: Sequence[Record] = ()
    ) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self._system()}]
        for demo in demonstrations:
            out.append({"role": "user", "content": self._instruction(demo.label, {})})
            out.append({"role": "assistant", "content": self._answer(demo)})
        out.append({"role": "user", "content": self._instruction(label, conditions)})
        return out
