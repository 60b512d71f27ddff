"""The prompt E(e_task, e_condition, e_demo) as chat messages.

The task specification becomes the system message; each demonstration
becomes a pair of turns (the instruction for its label, then its fields as
the assistant's answer, in the step's output format), and the record's own
instruction, with its label and conditions, comes last. So what many
prompts share comes first, where providers' automatic prompt caching (and
the embedded model's prefix copying) reuse it. One exception, kept for the
cache keys of earlier runs: with demonstrations, the record's conditions
are said in the system message, unless `generation.prompt_order:
shared_first` moves them to the last turn. Small instruct
models follow a pattern shown as earlier turns far better than one
described in words.

Every part is a Jinja2 template (see `synthloom.templating` and
`synthloom.generate.tasks`); a recipe can override any of them under
`generation.templates`, and each step its own instruction.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..recipe import TaskSpec, TemplatesSpec
from ..records import Record
from ..templating import render
from .tasks import DEFAULT_DEMONSTRATION, DEFAULT_INSTRUCTION, DEFAULT_SYSTEM, label_field_description

Messages = list[dict[str, str]]


class PromptBuilder:
    """Renders the chat messages of one step (by default: the whole record in one call)."""

    def __init__(
        self,
        task: TaskSpec,
        templates: TemplatesSpec | None = None,
        *,
        output: str = "text",
        step_fields: Sequence[str] | None = None,
        context_fields: Sequence[str] = (),
        instruction: str | None = None,
        step_name: str = "record",
        shared_first: bool = False,
    ):
        self.task = task
        self.shared_first = shared_first
        templates = templates or TemplatesSpec()
        self.system = templates.system or DEFAULT_SYSTEM
        self.instruction = instruction or templates.instruction or DEFAULT_INSTRUCTION
        self.demonstration = templates.demonstration or DEFAULT_DEMONSTRATION
        self.output = output
        self.step_fields = list(step_fields or task.fields)
        self.context_fields = list(context_fields)
        descriptions = task.field_descriptions
        self.step_vars = {
            "name": step_name,
            "fields": {
                name: descriptions.get(name) or label_field_description(task.label_names)
                for name in self.step_fields
            },
            "writes_label": task.label_field in self.step_fields,
        }
        self._task_vars = {
            "kind": task.kind,
            "description": task.description,
            "role": task.role,
            "fields": descriptions,
            "labels": task.label_names,
            "label_field": task.label_field,
        }
        self._label_descriptions = {label: task.label_description(label) for label in task.label_names}
        self._needed = self.context_fields + [f for f in self.step_fields if f != task.label_field]
        # Renders are pure functions of their inputs; a run has far fewer
        # distinct (label, conditions) pairs and demonstrations than records.
        self._memo: dict[Any, str] = {}

    def _render_instruction(self, label: str | None, conditions: Mapping[str, Any], fields: Mapping[str, Any],
                            shots: int) -> str:
        labels = self.task.split_labels(label)
        return render(
            self.instruction,
            task=self._task_vars,
            step=self.step_vars,
            output=self.output,
            label=label,
            labels=labels,
            label_description=self._label_descriptions.get(label) if label else None,
            label_descriptions=self._label_descriptions,
            conditions=dict(conditions),
            fields=dict(fields),
            shots=shots,
            conditions_last=self.shared_first,
        )

    def instruction_text(self, label: str | None, conditions: Mapping[str, Any],
                         fields: Mapping[str, Any] | None = None, shots: int = 0,
                         key: tuple[Any, ...] | None = None) -> str:
        if fields:
            return self._render_instruction(label, conditions, fields, shots)
        memo_key = ("instruction", label, tuple(conditions.items()) if key is None else key, shots > 0)
        text = self._memo.get(memo_key)
        if text is None:
            text = self._memo[memo_key] = self._render_instruction(label, conditions, {}, shots)
        return text

    def system_text(self, conditions: Mapping[str, Any] | None = None, shots: int = 0,
                    key: tuple[Any, ...] | None = None) -> str:
        if shots and conditions:
            memo_key = ("system", tuple(conditions.items()) if key is None else key)
        else:
            memo_key = ("system", None)
        text = self._memo.get(memo_key)
        if text is None:
            text = self._memo[memo_key] = render(
                self.system, task=self._task_vars, conditions=dict(conditions or {}), shots=shots
            )
        return text

    def answer_values(self, record: Record) -> dict[str, Any]:
        """The values this step writes, taken from a finished record (a demonstration)."""
        label_field = self.task.label_field
        return {name: record.label if name == label_field else record.fields.get(name) for name in self.step_fields}

    def answer_text(self, record: Record) -> str:
        """A record's answer to this step, as the model should write it."""
        key = ("answer", record.id, record.label, tuple((n, repr(record.fields.get(n))) for n in self.step_fields))
        text = self._memo.get(key)
        if text is None:
            values = self.answer_values(record)
            if self.output == "json":
                text = json.dumps(values, ensure_ascii=False)
            else:
                text = render(self.demonstration, task=self._task_vars, step=self.step_vars, fields=values, label=record.label)
            self._memo[key] = text
        return text

    def usable(self, record: Record) -> bool:
        """Whether a support record has every field this step shows or writes."""
        if self.step_vars["writes_label"] and record.label is None:
            return False
        return all(record.fields.get(name) not in (None, "") for name in self._needed)

    def messages(
        self,
        label: str | None,
        conditions: Mapping[str, Any],
        demonstrations: Sequence[Record] = (),
        fields: Mapping[str, Any] | None = None,
    ) -> Messages:
        shots = len(demonstrations)
        key = tuple(conditions.items())
        # shared_first: the system message is the same for every record; its conditions come last.
        system = self.system_text(None, shots) if self.shared_first else self.system_text(conditions, shots, key)
        out = [{"role": "system", "content": system}]
        shown_label = None if self.step_vars["writes_label"] else label
        for demo in demonstrations:
            context = {name: demo.fields.get(name) for name in self.context_fields}
            demo_label = None if self.step_vars["writes_label"] else demo.label
            out.append({"role": "user", "content": self.instruction_text(demo_label, {}, context, shots, ())})
            out.append({"role": "assistant", "content": self.answer_text(demo)})
        out.append({"role": "user", "content": self.instruction_text(shown_label, conditions, fields, shots, key)})
        return out


__all__ = ["Messages", "PromptBuilder"]
