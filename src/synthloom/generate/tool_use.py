"""Tool-use trajectories: a query, the model's tool calls, the tools' real results, the final answer.

A `tool_use` recipe's record is made in three calls and one execution:

1. the query: a request a user (the record's conditions, e.g. a persona)
   makes that needs one call, calls to several tools, or parallel calls to
   one tool (the call kind, drawn per record, as APIGen asks);
2. the calls: the model answers the query with JSON `{"tool_calls": [{name,
   arguments}]}`, constrained by the backend's JSON-schema support to the
   tools' own argument schemas (`tools.constrain`);
3. the execution: each well-formed call runs for real (`tools/`: Python in
   the sandbox, MCP on its server); a malformed one is not run and its
   `tool` message says why;
4. the answer: the model reads the query and the results and answers.

The record holds `query`, `answer`, and `messages` + `tools` (JSON text) in
the OpenAI/TRL form: the user turn, the assistant turn with `tool_calls`,
one `tool` message per call, the final assistant turn. `meta.tool_calls`
keeps each call's status and error. Curation (`tool_format`,
`tool_execution`, `tool_semantic`) decides what is kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from .._json import dumps
from ..llm import Completion, InvalidAnswer, Request, Scheduler
from ..recipe import Recipe
from ..records import Record
from ..tools import ToolCall, ToolRunner, Toolset, format_problem, load_toolset, make_call
from .conditions import record_rng
from .engine import GenerationResult, Generator, PlannedRecord, PlanRunner
from .steps import Finished, step_seed

KIND_ASKS = {
    "single": "needs exactly one call to one of the tools",
    "multiple": "needs calls to two different tools",
    "parallel": "needs the same tool called two or three times with different arguments",
}
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def tool_lines(toolset: Toolset) -> str:
    lines = []
    for tool in toolset.tools.values():
        props = tool.parameters.get("properties", {})
        args = ", ".join(f"{name}: {p.get('type', 'any')}" for name, p in props.items())
        lines.append(f"- {tool.name}({args}): {tool.description}".rstrip(": "))
    return "\n".join(lines)


def calls_schema(toolset: Toolset, mode: str, max_calls: int) -> dict[str, Any] | None:
    """The JSON schema the calls answer is constrained to (None: unconstrained)."""
    if mode == "none":
        return None
    if mode == "names":
        items: dict[str, Any] = {"type": "object", "properties": {"name": {"enum": list(toolset.tools)},
                                                                  "arguments": {"type": "object"}},
                                 "required": ["name", "arguments"]}
    else:
        items = {"anyOf": [
            {"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.parameters},
             "required": ["name", "arguments"]}
            for t in toolset.tools.values()
        ]}
    return {"type": "object", "required": ["tool_calls"],
            "properties": {"tool_calls": {"type": "array", "items": items, "minItems": 1, "maxItems": max_calls}}}


def parse_calls(text: str) -> list[ToolCall] | None:
    """The calls in an answer ({"tool_calls": [...]}, one call object, or a list), or None when there are none."""
    match = _JSON_OBJECT.search(text or "")
    try:
        value = json.loads(match.group(0) if match else text)
    except (TypeError, json.JSONDecodeError):
        return None
    if isinstance(value, dict):
        value = value.get("tool_calls", [value] if "name" in value else None)
    if not isinstance(value, list) or not value:
        return None
    calls = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "name" not in item:
            return None
        calls.append(make_call(i, item["name"], item.get("arguments", item.get("parameters", {}))))
    return calls


def clean_query(text: str) -> str:
    text = (text or "").strip().split("\n\n")[0].strip()
    text = re.sub(r"^(request|query|user)\s*:\s*", "", text, flags=re.I)
    return text.strip().strip('"').strip()


def parse_query(completion: Completion) -> str:
    """The user's request, cleaned; an empty one is unusable (asked again)."""
    query = clean_query(completion.text)
    if not query:
        raise InvalidAnswer("no request in the answer")
    return query


def answer_prompt(query: str, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
    shown = "\n".join(f"- {c.name}({c.raw_arguments}) returned: {r[:600]}" for c, r in zip(calls, results))
    return (f"The user asked: {query}\n\nThe tools were called:\n{shown}\n\n"
            "Write the final answer to the user in one or two sentences, using these results.")


class ToolUseChain:
    """Runs one record: query, calls, execution, answer."""

    steps = ("query", "calls", "answer")

    def __init__(self, recipe: Recipe, generator: ToolUseGenerator):
        self.recipe = recipe
        self.generator = generator
        self.runner: ToolRunner | None = None

    def request(self, plan: PlannedRecord, step: int, messages: list[dict[str, str]], max_tokens: int,
                schema: dict[str, Any] | None = None, temperature: float | None = None) -> Request:
        gen = self.recipe.generation
        return Request(messages=tuple(messages), temperature=gen.temperature if temperature is None else temperature,
                       max_tokens=max_tokens, top_p=gen.top_p, seed=step_seed(gen.seed, plan.index, step),
                       json_schema=schema, sample=plan.sample)

    async def complete(self, plan: PlannedRecord, scheduler: Scheduler) -> Finished:
        spec, toolset = self.recipe.tools, self.generator.toolset
        done = Finished(label=plan.label)
        text: Callable[[Completion], str] = lambda c: c.text  # noqa: E731
        outcome = await scheduler.complete(plan.request, parse_query)
        done.add(outcome)
        if not outcome.ok:
            done.error, done.failed_step = outcome.error, "query"
            return done
        query = outcome.value
        system = ("You are an assistant that answers by calling tools. The tools:\n" + tool_lines(toolset) +
                  '\nAnswer only with JSON: {"tool_calls": [{"name": "...", "arguments": {...}}]}.')
        schema = calls_schema(toolset, spec.constrain, spec.max_calls)  # type: ignore[union-attr]
        request = self.request(plan, 1, [{"role": "system", "content": system}, {"role": "user", "content": query}],
                               spec.calls_max_tokens, schema, temperature=0.2)  # type: ignore[union-attr]
        outcome = await scheduler.complete(request, text)
        done.add(outcome)
        if not outcome.ok:
            done.error, done.failed_step = outcome.error, "calls"
            return done
        raw = outcome.value or ""
        calls = parse_calls(raw) or []
        schemas = toolset.schemas()
        problems = [format_problem(c, schemas) for c in calls]
        runnable = [c for c, p in zip(calls, problems) if p is None]
        ran = iter(await self.runner.call_many(runnable)) if runnable else iter(())  # type: ignore[union-attr]
        contents, log = [], []
        for call, problem in zip(calls, problems):
            if problem is None:
                result = next(ran)
                contents.append(result.message_content())
                log.append({"name": call.name, "arguments": call.raw_arguments, **result.to_json()})
            else:
                contents.append(json.dumps({"error": problem}))
                log.append({"name": call.name, "arguments": call.raw_arguments, "status": "not_run", "error": problem})
        messages: list[dict[str, Any]] = [{"role": "user", "content": query}]
        if calls:
            messages.append({"role": "assistant", "content": None, "tool_calls": [c.to_message() for c in calls]})
            messages += [{"role": "tool", "tool_call_id": c.id, "name": c.name, "content": r} for c, r in zip(calls, contents)]
            prompt = answer_prompt(query, calls, contents)
            request = self.request(plan, 2, [{"role": "user", "content": prompt}], spec.answer_max_tokens)  # type: ignore[union-attr]
            outcome = await scheduler.complete(request, text)
            done.add(outcome)
            if not outcome.ok:
                done.error, done.failed_step = outcome.error, "answer"
                return done
            answer = (outcome.value or "").strip()
        else:  # no call parsed: the answer is what the model wrote, and tool_format drops it
            answer = raw.strip()
        messages.append({"role": "assistant", "content": answer})
        done.fields = {"query": query, "answer": answer,
                       "messages": dumps(messages).decode("utf-8"),
                       "tools": dumps(toolset.openai()).decode("utf-8")}
        done.extra.update(call_kind=plan.meta.get("call_kind"), tool_calls=log)
        return done


class ToolUseGenerator(Generator):
    """Plans each record's query prompt and call kind; runs the chain with the tools started."""

    def __init__(self, recipe: Recipe, support: Sequence[Record] = (), **kwargs: Any):
        super().__init__(recipe, support, **kwargs)
        self.tool_chain = ToolUseChain(recipe, self)
        self.toolset: Toolset | None = None

    def plan_record(self, index: int, **kwargs: Any) -> PlannedRecord:
        self._ready()
        if self.toolset is None:  # planning without running (synthloom plan): describe the tools once
            self.toolset = load_toolset(self.recipe.tools)  # type: ignore[arg-type]
        recipe, gen = self.recipe, self.recipe.generation
        prompt_index, sample = divmod(index, gen.samples_per_prompt)
        label, conditions = self.sampler.draw(prompt_index, prompt_index, kwargs.get("fixed"))  # type: ignore[union-attr]
        kind = record_rng(gen.seed, prompt_index, "call_kind").choice(recipe.tools.call_kinds)  # type: ignore[union-attr]
        who = "; ".join(f"{k}: {v}" for k, v in conditions.items())
        system = f"You write requests that users send to an assistant. {recipe.task.description}."
        user = (f"The assistant has these tools:\n{tool_lines(self.toolset)}\n\n"
                f"Write one request from a user{' (' + who + ')' if who else ''} that {KIND_ASKS[kind]}. "
                "Give the concrete values (numbers, names) the tools need. Write only the request.")
        plan = PlannedRecord(f"{recipe.name}-{index:06d}", index, label, conditions, [], None, sample,  # type: ignore[arg-type]
                             {"call_kind": kind})
        plan.request = self.tool_chain.request(plan, 0, [{"role": "system", "content": system},
                                                         {"role": "user", "content": user}],
                                               recipe.tools.query_max_tokens)  # type: ignore[union-attr]
        return plan

    async def run(self, scheduler: Scheduler, plans: Any, total: int, on_record: Any = None) -> GenerationResult:
        from .engine import run_chain

        self.last_result = GenerationResult()
        await run_chain(self.tool_chain, scheduler, plans, total, self.to_record, self.last_result, self.answers, on_record)
        return self.last_result

    async def produce(self, scheduler: Scheduler, limit: int | None = None, on_record: Any = None,
                      out: Path | None = None, runner: PlanRunner | None = None) -> GenerationResult:
        """Start the tools (a module that does not load or a server that does not start stops here,
        before any model is asked), generate, stop them."""
        async with ToolRunner(self.recipe.tools) as tools:  # type: ignore[arg-type]
            self.toolset = tools.toolset
            self.tool_chain.runner = tools
            return await super().produce(scheduler, limit, on_record, out, runner)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        if self.toolset is not None:
            out["tools"] = {name: tool.source for name, tool in self.toolset.tools.items()}
        return out


__all__ = ["ToolUseChain", "ToolUseGenerator", "calls_schema", "parse_calls"]
