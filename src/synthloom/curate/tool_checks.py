"""APIGen's three checks of tool-use trajectories, as curation stages.

- `tool_format`: the trajectory has calls; each call's arguments are a JSON
  object, name a tool of the record's `tools`, carry every required
  argument and validate against the tool's JSON schema; every call has its
  `tool` message.
- `tool_execution`: every call runs again, for real (Python tools in the
  sandbox, MCP tools on their server, with the recipe's `tools:`); a call
  that errs, times out, or returns nothing drops the record. A tool with no
  implementation is not run: the record is kept and says so.
- `tool_semantic`: a judge (any model, asked through `llm/session.py`)
  reads the query, the calls with their results and the final answer, and
  says whether they answer the query.

Each drop's reason starts with its kind (`unknown_tool: ...`,
`missing_argument: ...`, `tool_error: ...`, `timeout: ...`,
`empty_result: ...`, `not_answered: ...`), and `meta[<stage>]` keeps the
details, so the funnel and `reason_counts` say why records went.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Sequence

from ..llm import InvalidAnswer, Request
from ..recipe import ToolExecutionSpec, ToolFormatSpec, ToolSemanticSpec, ToolsSpec
from ..records import DataError, Record
from ..tools import as_list, calls_in, empty, format_problem, problem_kind, run_calls, schemas_of, tool_results
from ._llm import ask_all
from .base import DROP, KEEP, SpecStage, stage_for


def trajectory(record: Record) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, tools) of a record, from lists or their JSON text; a DataError names a record without."""
    try:
        messages = as_list(record.fields.get("messages"))
        tools = as_list(record.fields.get("tools"))
    except json.JSONDecodeError as exc:
        raise DataError(f"record {record.id}: messages or tools is not JSON: {exc}") from None
    if not messages:
        raise DataError(f"record {record.id}: no messages field, which the tool checks read")
    return messages, tools


def reason_counts(records: Sequence[Record], stage: str) -> dict[str, int]:
    """How many records a stage dropped, by the kind at the front of its reason."""
    return dict(Counter(problem_kind(r.reasons.get(stage, "")) for r in records if r.flags.get(stage) == DROP))


def _decide(record: Record, stage: str, problem: str | None, meta: dict[str, Any]) -> None:
    record.decide(stage, KEEP if problem is None else DROP, 1.0 if problem is None else 0.0, problem or "")
    record.meta[stage] = meta


@stage_for(ToolFormatSpec)
class ToolFormat(SpecStage):
    name = "tool_format"
    record_local = True

    def check(self, records: Sequence[Record]) -> None:
        """Before anything runs: every record has a trajectory (else one DataError naming it)."""
        for record in records:
            trajectory(record)

    def problem(self, record: Record) -> str | None:
        messages, tools = trajectory(record)
        calls = calls_in(messages)
        if not calls:
            return "no_tool_call: the assistant made no tool call"
        if not tools:
            return "no_tools: the record has no tools list to check the calls against"
        schemas = schemas_of(tools)
        for call in calls:
            problem = format_problem(call, schemas)
            if problem:
                return problem
        answered = tool_results(messages)
        unanswered = [c.id for c in calls if c.id not in answered]
        if unanswered:
            return f"no_tool_result: call {unanswered[0]} has no tool message"
        return None

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        for record in records:
            problem = self.problem(record)
            _decide(record, self.name, problem, {"calls": len(calls_in(trajectory(record)[0]))})
        return records


@stage_for(ToolExecutionSpec)
class ToolExecution(SpecStage):
    name = "tool_execution"
    record_local = False  # the tools (an MCP server, the sandbox) start once for all records

    def check(self, records: Sequence[Record]) -> None:
        self.tools()
        for record in records:
            trajectory(record)

    def tools(self) -> ToolsSpec:
        spec = self.context.extras.get("tools")
        if spec is None:
            raise DataError("stage tool_execution needs the recipe's tools: section (the tools the calls run on)")
        return spec

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        spec = self.tools()
        batches = [calls_in(trajectory(r)[0]) for r in records]
        results = run_calls(spec, batches, self.spec.timeout)
        for record, calls, got in zip(records, batches, results):
            problem, not_run = None, []
            for call, result in zip(calls, got):
                if result.status == "not_run":
                    not_run.append(call.name)
                elif result.status in ("timeout", "killed"):
                    problem = problem or f"{result.status}: {call.name}: {result.error}"
                elif not result.ok:
                    problem = problem or f"tool_error: {call.name}: {result.error}"
                elif empty(result.content):
                    problem = problem or f"empty_result: {call.name} returned nothing"
            if not calls:
                problem = "no_tool_call: nothing to run"
            meta = {"results": [r.to_json() for r in got]}
            _decide(record, self.name, problem, meta)
            if problem is None and not_run:
                record.reasons[self.name] = f"not run (no implementation): {', '.join(sorted(set(not_run)))}"
                record.scores.pop(self.name, None)
        return records


_VERDICT = re.compile(r"\b(yes|no)\b", re.I)
JUDGE_SCHEMA = {"type": "object", "required": ["verdict", "reason"],
                "properties": {"verdict": {"enum": ["yes", "no"]}, "reason": {"type": "string", "maxLength": 200}}}


def judge_prompt(messages: Sequence[dict[str, Any]]) -> str:
    query = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
    results = tool_results(messages)
    calls = "\n".join(f"- {c.name}({c.raw_arguments}) returned: {results.get(c.id, '(no result)')[:400]}"
                      for c in calls_in(messages))
    finals = [m for m in messages if m.get("role") == "assistant" and m.get("content")]
    answer = str(finals[-1]["content"]) if finals else "(none)"
    return (f"A user asked: {query}\n\nThe assistant called tools:\n{calls}\n\nIts final answer: {answer}\n\n"
            "Do these calls fit the request, and do their results and the answer answer it? "
            'Reply with JSON: {"verdict": "yes" or "no", "reason": "a short reason"}.')


def parse_verdict(completion: Any) -> tuple[bool, str]:
    text = completion.text if hasattr(completion, "text") else str(completion)
    try:
        value = json.loads(text)
        verdict, reason = str(value["verdict"]).lower(), str(value.get("reason", ""))
    except (json.JSONDecodeError, KeyError, TypeError):
        match = _VERDICT.search(text)
        if match is None:
            raise InvalidAnswer(f"no yes/no verdict: {text[:60]!r}") from None
        verdict, reason = match.group(1).lower(), text.strip()
    if verdict not in ("yes", "no"):
        raise InvalidAnswer(f"verdict {verdict!r} is neither yes nor no")
    return verdict == "yes", reason.strip()[:200]


@stage_for(ToolSemanticSpec)
class ToolSemantic(SpecStage):
    name = "tool_semantic"
    record_local = True

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        requests = [
            Request(messages=({"role": "system", "content": "You check the work of an assistant that uses tools."},
                              {"role": "user", "content": judge_prompt(trajectory(r)[0])}),
                    temperature=s.temperature, max_tokens=s.max_tokens, seed=s.seed, json_schema=JUDGE_SCHEMA)
            for r in records
        ]
        for record, outcome in zip(records, ask_all(s.model, requests, parse_verdict, self.context, self.name)):
            if not outcome.ok:
                record.decide(self.name, KEEP, None, f"not judged: no usable verdict ({outcome.error.kind})")  # type: ignore[union-attr]
                continue
            ok, why = outcome.value
            _decide(record, self.name, None if ok else f"not_answered: {why}".rstrip(": "), {"verdict": "yes" if ok else "no", "reason": why})
        return records


__all__ = ["JUDGE_SCHEMA", "ToolExecution", "ToolFormat", "ToolSemantic", "judge_prompt", "parse_verdict", "reason_counts", "trajectory"]
