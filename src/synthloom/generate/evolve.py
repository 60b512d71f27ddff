"""Evol-Instruct style rewriting: a new record made from an accepted one, deeper or broader.

`deepen` asks for a more specific, more demanding version of the example
(a concrete detail, a constraint, one more step); `broaden` asks for a new
example in the same domain on a rarer topic. The evolved record keeps its
parent's label and conditions and names its parent and operation in
`meta`. For a multi-step recipe only the first step is rewritten; the
later steps (a response, a label) then run as usual.
"""

from __future__ import annotations

from typing import Mapping

from ..records import Record
from ..templating import render
from .prompt import Messages, PromptBuilder
from .tasks import OUTPUT_FORMAT

OPERATIONS: Mapping[str, str] = {
    "deepen": (
        "Rewrite this example into a more specific and more demanding one: add one concrete "
        "detail, constraint or step that makes it less generic."
    ),
    "broaden": (
        "Write a new example of the same kind on a different, less common topic. "
        "Do not reuse its wording."
    ),
}

EVOLVE = """\
Here is an example{% if label %} that is {{ label }}{% if label_description %} ({{ label_description }}){% endif %}{% endif %}:

{{ example }}

{{ operation }}{% if label %} It must still be {{ label }}.{% endif %}
""" + OUTPUT_FORMAT


def evolve_messages(prompts: PromptBuilder, parent: Record, operation: str) -> Messages:
    """The chat messages that ask for `operation` applied to `parent` (in the step's format)."""
    label = parent.label if not prompts.step_vars["writes_label"] else None
    text = render(
        EVOLVE,
        example=prompts.answer_text(parent),
        operation=OPERATIONS[operation],
        label=label,
        label_description=prompts.task.label_description(label) if label else None,
        step=prompts.step_vars,
        output=prompts.output,
    )
    return [{"role": "system", "content": prompts.system_text()}, {"role": "user", "content": text}]


__all__ = ["OPERATIONS", "evolve_messages"]
