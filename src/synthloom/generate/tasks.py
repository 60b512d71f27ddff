"""Task kinds and their default templates: what the model is asked, and how an answer looks.

One set of templates serves every kind (classification, multilabel, pair,
qa, instruction, free): the instruction names the label(s) and conditions
and lists the fields to write, in the output format of the step (plain-text
lines or JSON). Steps of a multi-step recipe see the fields written so far.
A recipe overrides any template under `generation.templates` (or a step's
`instruction`); the variables each template sees are documented in
docs/generation.md.
"""

from __future__ import annotations

# With demonstrations, every user turn reads the same and the record's
# conditions go here: a small model continues the pattern of earlier turns,
# and a last turn that differs from them (extra condition lines) breaks it.
DEFAULT_SYSTEM = (
    "{% if task.role %}You are {{ task.role }}. {% endif %}"
    "You write {{ task.description }}. Each answer is one new, realistic example, "
    "written exactly as it would appear, with no comments before or after it."
    "{% if shots and conditions %} The next example has "
    "{% for key, value in conditions.items() %}{{ key | humanize }}: {{ value }}{% if not loop.last %}; {% endif %}{% endfor %}."
    "{% endif %}"
)

# What to write: the label(s) a record must have, then its conditions.
_LEAD = """\
{% if fields %}
{% for name, value in fields.items() %}
{{ name | humanize | capitalize }}: {{ value }}
{% endfor %}

Now write {{ step.fields.values() | join(' and ') }}{% if label and not step.writes_label %} (the example is {{ label }}){% endif %}.
{% elif labels | length > 1 %}
Write one example that is all of: {% for l in labels %}{{ l }}{% if label_descriptions[l] %} ({{ label_descriptions[l] }}){% endif %}{% if not loop.last %}; {% endif %}{% endfor %}.
{% else %}
Write one example{% if label %} that is {{ label }}{% if label_description %} ({{ label_description }}){% endif %}{% endif %}.
{% endif %}
{% if not shots or conditions_last %}
{% for key, value in conditions.items() %}
{{ key | humanize | capitalize }}: {{ value }}
{% endfor %}
{% endif %}
"""

# How to answer: one bare text, a line per field, or a JSON object.
OUTPUT_FORMAT = """\
{% if output == 'json' %}
Answer with a JSON object with the keys {% for name, description in step.fields.items() %}"{{ name }}" ({{ description }}){% if not loop.last %}, {% endif %}{% endfor %}.
{% elif step.fields | length > 1 %}
Answer with these lines:
{% for name, description in step.fields.items() %}
{{ name }}: <{{ description }}>
{% endfor %}
{% else %}
Answer with the {{ step.fields.values() | first }} only.
{% endif %}"""

DEFAULT_INSTRUCTION = _LEAD + OUTPUT_FORMAT

DEFAULT_DEMONSTRATION = """\
{% if step.fields | length > 1 %}
{% for name in step.fields %}
{{ name }}: {{ fields[name] }}
{% endfor %}
{% else %}
{{ fields[step.fields | first] }}
{% endif %}"""

LABEL_FIELD_DESCRIPTION = "the label, one of: {labels}"


def label_field_description(labels: list[str]) -> str:
    return LABEL_FIELD_DESCRIPTION.format(labels=", ".join(labels))


__all__ = [
    "OUTPUT_FORMAT",
    "DEFAULT_DEMONSTRATION",
    "DEFAULT_INSTRUCTION",
    "DEFAULT_SYSTEM",
    "label_field_description",
]
