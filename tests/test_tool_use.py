"""Tool-use data: tools from Python, JSON schema and a real MCP stdio server; APIGen's three checks.

The MCP server (tests/mcp_test_server.py) is started over stdio by the
tests; Python tools run in the sandbox. The judge and the generating model
are the scripted fake backend here; tests/test_examples.py runs the
example on the embedded model.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from synthloom.curate import CurationContext, curate
from synthloom.curate.tool_checks import reason_counts
from synthloom.llm import Completion, FakeBackend
from synthloom.recipe import (
    RecipeError, ToolExecutionSpec, ToolFormatSpec, ToolSemanticSpec, ToolsSpec, load_recipe,
)
from synthloom.records import Record
from synthloom.tools import ToolRunner, make_call

pytest.importorskip("mcp")
SERVER = str(ROOT / "tests" / "mcp_test_server.py")

TOOLS_PY = '''
"""Test tools."""
import time


def area(width: float, height: float = 1.0) -> float:
    """The area of a rectangle.

    Args:
        width: its width in metres
        height: its height in metres
    """
    return width * height


def fails(x: int) -> int:
    """Always fails."""
    raise ValueError(f"cannot do {x}")


def spins(x: int) -> int:
    """Never returns."""
    while True:
        pass


def nothing(x: int) -> list:
    """An empty result."""
    return []
'''

CONVERT = {"type": "function", "function": {
    "name": "to_cm", "description": "Metres in centimetres.",
    "parameters": {"type": "object", "properties": {"metres": {"type": "number"}}, "required": ["metres"]}}}


@pytest.fixture
def tool_module(tmp_path):
    path = tmp_path / "mytools.py"
    path.write_text(TOOLS_PY)
    (tmp_path / "impl.py").write_text("def to_cm(metres: float) -> float:\n    return metres * 100\n")
    return tmp_path


def spec_of(folder: Path, *, mcp: bool = True, timeout: float = 3.0, **extra) -> ToolsSpec:
    sources = [{"python": f"mytools.py:{n}"} for n in ("area", "fails", "spins", "nothing")]
    sources += [{**CONVERT, "implementation": "impl.py:to_cm"},
                {"function": {**CONVERT["function"], "name": "to_mm"}}]  # a schema without implementation
    if mcp:
        sources.append({"mcp": {"command": "python", "args": [SERVER]}})
    return ToolsSpec.model_validate({"sources": sources, "timeout": timeout, "memory_mb": 512, **extra},
                                    context={"base_dir": str(folder)})


def run(coro):
    return asyncio.run(coro)


def test_tools_from_python_json_schema_and_an_mcp_server_run_for_real_and_a_dead_server_is_an_error(tool_module):
    async def work():
        async with ToolRunner(spec_of(tool_module)) as runner:
            tools = {t["function"]["name"]: t["function"] for t in runner.toolset.openai()}
            calls = [make_call(0, "area", {"width": 3, "height": 2}), make_call(1, "to_cm", {"metres": 1.5}),
                     make_call(2, "price", {"item": "bread", "quantity": 2}), make_call(3, "to_mm", {"metres": 1}),
                     make_call(4, "fails", {"x": 4}), make_call(5, "price", {"item": "caviar"}),
                     make_call(6, "spins", {"x": 1}), make_call(7, "hang", {"seconds": 30})]
            results = await runner.call_many(calls)
            # the server dies mid-run: its calls become errors, the other tools go on
            died = await runner.call(make_call(8, "die", {}))
            after = await runner.call(make_call(9, "price", {"item": "milk"}))
            python = await runner.call(make_call(10, "area", {"width": 2}))
            return tools, results, (died, after, python)

    tools, results, (died, after, python) = run(work())
    assert set(tools) == {"area", "fails", "spins", "nothing", "to_cm", "to_mm", "price", "blank", "hang", "die"}
    area = tools["area"]
    assert area["description"] == "The area of a rectangle."
    assert area["parameters"]["required"] == ["width"]
    assert area["parameters"]["properties"]["width"] == {"type": "number", "description": "its width in metres"}
    assert tools["price"]["parameters"]["properties"]["item"]["type"] == "string"  # listed by the MCP server
    got = [(r.status, r.content) for r in results]
    assert got[:4] == [("ok", "6.0"), ("ok", "150.0"), ("ok", "4.5"), ("not_run", "")]
    assert results[4].status == "error" and "ValueError: cannot do 4" in results[4].error
    assert results[5].status == "error" and "no item named 'caviar'" in results[5].error
    assert results[6].status in ("timeout", "killed")  # the sandbox cut the endless loop off
    assert results[7].status == "timeout" and "3 s" in results[7].error
    assert died.status == "error" and "stopped" in died.error
    assert after.status == "error" and after.error == died.error
    assert python.ok and python.content == "2.0"


def test_bad_tool_sources_are_one_line_errors(tool_module, tmp_path):
    (tool_module / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(RecipeError, match=r"tools.sources\[0\]: tool .*broken.py:f: .*broken.py does not load: "
                                          r"ModuleNotFoundError: No module named 'no_such_module_here'"):
        run(ToolRunner(ToolsSpec.model_validate({"sources": [{"python": "broken.py:f"}]},
                                                context={"base_dir": str(tool_module)})).open())
    bad_server = ToolsSpec.model_validate({"sources": [{"mcp": {"command": "python", "args": ["-c", "raise SystemExit('no server here')"]}}]})
    with pytest.raises(RecipeError, match=r"tools.sources\[0\]: MCP server `python -c .*` failed to start: no server here"):
        run(ToolRunner(bad_server).open())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\ntask:\n  kind: tool_use\n  description: d\ntools:\n  sources:\n"
        "    - function:\n        name: f\n        parameters:\n          type: object\n"
        "          properties: {a: {type: nonsense}}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert "r.yaml:7" in str(info.value) and "not valid JSON Schema at properties/a/type" in str(info.value)
    recipe.write_text("name: t\ntask:\n  kind: tool_use\n  description: d\ntools:\n  sources:\n    - python: missing.py:f\n")
    with pytest.raises(RecipeError, match="r.yaml:7.*tool module not found"):
        load_recipe(recipe)


# -- the three checks on hand-made trajectories ---------------------------------------------------


def trajectory(rid: str, calls: list[tuple[str, object]], results: list[str] | None = None, answer: str = "It is 6 m².",
               tools=None) -> Record:
    made = [make_call(i, name, args) for i, (name, args) in enumerate(calls)]
    messages = [{"role": "user", "content": "What is the area of a 3 by 2 m room?"}]
    if made:
        messages.append({"role": "assistant", "content": None, "tool_calls": [c.to_message() for c in made]})
        for c, r in zip(made, results if results is not None else ["6.0"] * len(made)):
            messages.append({"role": "tool", "tool_call_id": c.id, "name": c.name, "content": r})
    messages.append({"role": "assistant", "content": answer})
    area = {"type": "function", "function": {"name": "area", "description": "", "parameters": {
        "type": "object", "properties": {"width": {"type": "number"}, "height": {"type": "number"}},
        "required": ["width"], "additionalProperties": False}}}
    others = [{"type": "function", "function": {"name": n, "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}}}} for n in ("fails", "spins", "nothing")]
    tools = tools if tools is not None else [CONVERT, area, *others]
    return Record(id=rid, fields={"query": messages[0]["content"], "answer": answer,
                                  "messages": json.dumps(messages), "tools": json.dumps(tools)})


def test_the_three_checks_catch_each_bad_kind_with_its_reason(tool_module):
    good = trajectory("good", [("area", {"width": 3, "height": 2})])
    wrong = trajectory("wrong_answer", [("area", {"width": 3, "height": 2})], answer="Paris is in France.")
    records = [
        good, wrong,
        trajectory("no_call", []),
        trajectory("unknown", [("volume", {"width": 3})]),
        trajectory("missing", [("area", {"height": 2})]),
        trajectory("invalid", [("area", {"width": "three"})]),
        trajectory("extra", [("area", {"width": 3, "depth": 1})]),
        trajectory("not_json", [("area", "{width: 3")]),
        trajectory("no_result", [("area", {"width": 3})], results=[]),
        trajectory("error", [("fails", {"x": 1})]),
        trajectory("timeout", [("spins", {"x": 1})]),
        trajectory("empty", [("nothing", {"x": 1})]),
    ]

    def judge(request):
        prompt = request.messages[-1]["content"]
        verdict = "no" if "Paris" in prompt else "yes"
        return Completion(text=json.dumps({"verdict": verdict, "reason": "the answer is off topic" if verdict == "no" else "fine"}))

    backend = FakeBackend(responder=judge)
    context = CurationContext(extras={"tools": spec_of(tool_module, mcp=False, timeout=2.0)},
                              backend_factory=lambda config: backend)
    result = curate(records, [ToolFormatSpec(), ToolExecutionSpec(), ToolSemanticSpec(model={"backend": "fake"})], context)
    by_id = {r.id: r for r in records}
    assert [r.id for r in result.kept] == ["good"]
    expected = {
        "no_call": ("tool_format", "no_tool_call"), "unknown": ("tool_format", "unknown_tool"),
        "missing": ("tool_format", "missing_argument"), "invalid": ("tool_format", "invalid_argument"),
        "extra": ("tool_format", "invalid_argument"), "not_json": ("tool_format", "bad_arguments"),
        "no_result": ("tool_format", "no_tool_result"), "error": ("tool_execution", "tool_error"),
        "timeout": ("tool_execution", "timeout"), "empty": ("tool_execution", "empty_result"),
        "wrong_answer": ("tool_semantic", "not_answered"),
    }
    for rid, (stage, kind) in expected.items():
        record = by_id[rid]
        assert record.flags[stage] == "drop", (rid, record.flags, record.reasons)
        assert record.reasons[stage].startswith(kind + ":"), (rid, record.reasons[stage])
    assert "'three' is not of type 'number'" in by_id["invalid"].reasons["tool_format"]
    assert "ValueError: cannot do 1" in by_id["error"].reasons["tool_execution"]
    assert reason_counts(records, "tool_format") == {"no_tool_call": 1, "unknown_tool": 1, "missing_argument": 1,
                                                    "invalid_argument": 2, "bad_arguments": 1, "no_tool_result": 1}
    assert reason_counts(records, "tool_execution") == {"tool_error": 1, "timeout": 1, "empty_result": 1}
    assert [f.dropped for f in result.funnel] == [7, 3, 1]
    assert len(backend.calls) == 2  # the judge saw only what passed the first two checks


# -- generation with the scripted model, then export -------------------------------------------------


def scripted(request):
    """A query, then calls (checked against the schema the request constrains them to), then an answer."""
    text = request.messages[-1]["content"]
    if "Write one request" in text:
        return "How much do 3 apples cost, and what is the area of a 2 by 4 m table?"
    if request.json_schema is not None:
        items = request.json_schema["properties"]["tool_calls"]["items"]["anyOf"]
        assert {i["properties"]["name"]["const"] for i in items} >= {"price", "area"}
        return json.dumps({"tool_calls": [{"name": "price", "arguments": {"item": "apple", "quantity": 3}},
                                          {"name": "area", "arguments": {"width": 2, "height": 4}}]})
    assert "returned: 1.5" in text and "returned: 8.0" in text
    return "3 apples cost 1.50 and the table is 8 m²."


def test_a_tool_use_run_saves_trajectories_with_real_results_and_exports_them(tool_module, tmp_path):
    recipe = tool_module / "recipe.yaml"
    recipe.write_text(f"""
name: tools_test
model: {{backend: fake}}
task: {{kind: tool_use, description: shopping and measuring}}
tools:
  sources:
    - python: mytools.py:area
    - mcp: {{command: python, args: [{SERVER}]}}
      tools: [price]
  call_kinds: [multiple]
conditions: {{persona: [a carpenter]}}
generation: {{records: 2}}
curation:
  - stage: tool_format
  - stage: tool_execution
evaluation: []
""")
    from synthloom.execute.run import run as run_recipe

    result = run_recipe(recipe, tmp_path / "out", progress=False, backend=FakeBackend(responder=scripted))
    assert result.manifest["counts"]["curated"] == 2, result.manifest["curation"]
    record = result.curated[0]
    messages = json.loads(record.fields["messages"])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m["content"] for m in messages[2:4]] == ["1.5", "8.0"]  # the tools' real outputs
    assert messages[1]["tool_calls"][0]["function"] == {"name": "price", "arguments": '{"item": "apple", "quantity": 3}'}
    assert record.meta["call_kind"] == "multiple"
    assert {t["function"]["name"] for t in json.loads(record.fields["tools"])} == {"area", "price"}
    done = run_cli("export", str(tmp_path / "out"), "--format", "messages", "--out", str(tmp_path / "sft.jsonl"))
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "sft.jsonl").read_text().splitlines()[0])
    assert row["messages"][1]["tool_calls"][1]["function"]["name"] == "area"
    assert row["messages"][2] == {"role": "tool", "tool_call_id": "call_0", "name": "price", "content": "1.5"}
    assert isinstance(row["tools"], list) and len(row["tools"]) == 2


def test_a_tool_module_that_does_not_import_stops_the_run_before_any_model_call(tool_module):
    (tool_module / "broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    recipe = tool_module / "bad.yaml"
    recipe.write_text("name: bad\nmodel: {backend: fake}\ntask: {kind: tool_use, description: d}\n"
                      "tools:\n  sources:\n    - python: broken.py:f\n")
    done = run_cli("run", str(recipe), "--out", str(tool_module / "out"), "--no-progress")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("RuntimeError: broken on purpose"), done.stderr
    assert "tools.sources[0]" in done.stderr


def test_calls_are_read_from_the_forms_models_write_and_asked_for_under_each_tool_schema():
    from synthloom.generate.tool_use import calls_schema, parse_calls
    from synthloom.tools import Tool, Toolset

    calls = parse_calls('Sure! {"tool_calls": [{"name": "area", "arguments": {"width": 2}}, {"name": "price", "arguments": "{\\"item\\": 1"}]}')
    assert [(c.name, c.arguments) for c in calls] == [("area", {"width": 2}), ("price", None)]  # bad JSON kept for tool_format
    assert [c.name for c in parse_calls('{"name": "area", "parameters": {"width": 1}}')] == ["area"]
    assert parse_calls("I would call the area tool.") is None
    toolset = Toolset({"area": Tool("area", "", {"type": "object", "properties": {"width": {"type": "number"}}}, "python", "m:area")})
    schema = calls_schema(toolset, "schema", 2)["properties"]["tool_calls"]
    assert schema["maxItems"] == 2 and schema["items"]["anyOf"][0]["properties"]["arguments"]["properties"] == {"width": {"type": "number"}}
    assert calls_schema(toolset, "names", 2)["properties"]["tool_calls"]["items"]["properties"]["name"] == {"enum": ["area"]}
    assert calls_schema(toolset, "none", 2) is None
