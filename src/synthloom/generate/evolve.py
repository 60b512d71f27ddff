"""Evol-Instruct (Xu et al., 2023, WizardLM): a new record made from an accepted one, deeper or broader.

The paper's operations, each one request to the model:

- in depth (a harder version of the same example): `add_constraints`
  (one more constraint or requirement), `deepen` (more depth and breadth
  of what it asks), `concretize` (general concepts replaced by specific
  ones), `increase_reasoning` (asks for several explicit reasoning steps),
  `complicate_input` (a concrete input the answer must use: a table, code,
  a list of numbers, a short text);
- in breadth (mutation): `broaden`, a brand-new example in the same domain
  on a rarer topic.

As in the paper an in-depth rewrite may add only a little (10 to 20
words), so the example stays answerable. The evolved record keeps its
parent's label and conditions and names its parent, operation and request
in `meta`; the `evol_elimination` curation stage (curate/evolution.py)
then drops the evolutions that failed (no new information, an answer that
gives up, a copy of the request). For a multi-step recipe only the first
step is rewritten; the later steps (a response, a label) then run as usual.
"""

from __future__ import annotations

from typing import Mapping

from ..records import Record
from ..templating import render
from .prompt import Messages, PromptBuilder
from .tasks import OUTPUT_FORMAT

_IN_DEPTH = (
    " Make it a bit harder to handle but still reasonable and answerable by a person; "
    "add no more than 10 to 20 words."
)

OPERATIONS: Mapping[str, str] = {
    "add_constraints": "Rewrite this example with one more constraint or requirement added." + _IN_DEPTH,
    "deepen": (
        "Rewrite this example into a more specific and more demanding one: increase the depth "
        "and breadth of what it asks." + _IN_DEPTH
    ),
    "concretize": "Rewrite this example replacing its general concepts with more specific ones." + _IN_DEPTH,
    "increase_reasoning": (
        "If this example can be solved with a few simple steps, rewrite it to ask explicitly "
        "for reasoning in several steps." + _IN_DEPTH
    ),
    "complicate_input": (
        "Rewrite this example so that it includes a concrete input the answer must use: a small "
        "table, a few lines of code, a list of numbers or a short text." + _IN_DEPTH
    ),
    "broaden": (
        "Write a new example of the same kind on a different, less common topic, of the same "
        "length and difficulty. Do not reuse its wording."
    ),
}
IN_DEPTH = ("add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input")
IN_BREADTH = ("broaden",)

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


__all__ = ["IN_BREADTH", "IN_DEPTH", "OPERATIONS", "evolve_messages"]
