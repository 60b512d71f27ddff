"""The verifiers as the `finetune` stage's answer check: math by sympy, code by its tests, in the sandbox.

evaluate/ may not import curate/, so the stage takes its check as a
function; this is that function, made of the curation verifiers
themselves (`math_answer`, `python_exec` in curate/verifiers.py), so a
fine-tuned model's answers are judged exactly as a generated record's
would be. Each answer becomes a record, the verifier decides it, and its
flag and reason are the verdict.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..curate.base import KEEP, CurationContext
from ..curate.verifiers import MathAnswer, PythonExec
from ..recipe import MathAnswerSpec, PythonExecSpec
from ..records import Record


def check_answers(scoring: str, answers: Sequence[str], items: Sequence[dict[str, Any]]) -> list[tuple[bool, str]]:
    """(passed, reason) for each answer: `math` against the item's first reference, `code` against its tests."""
    if scoring == "math":
        stage: Any = MathAnswer(MathAnswerSpec(field="answer", reference_field="reference"), CurationContext())
        records = [Record(id=f"answer-{i}", fields={"answer": a, "reference": str((item.get("references") or [""])[0])})
                   for i, (a, item) in enumerate(zip(answers, items))]
    elif scoring == "code":
        stage = PythonExec(PythonExecSpec(field="code", tests_field="tests", timeout=10, cpu_seconds=5), CurationContext())
        records = [Record(id=f"answer-{i}", fields={"code": a, "tests": str(item.get("tests") or "")})
                   for i, (a, item) in enumerate(zip(answers, items))]
    else:
        raise ValueError(f"no verifier for scoring {scoring!r}")
    stage(records)
    return [(r.flags.get(stage.name) == KEEP, r.reasons.get(stage.name, "")) for r in records]


__all__ = ["check_answers"]
