"""Tools for tool-use data: the recipe's Python, JSON-schema and MCP tools, described and run for real.

    from synthloom.tools import ToolRunner
    async with ToolRunner(recipe.tools) as runner:
        runner.toolset.openai()                 # the OpenAI/TRL `tools` list
        results = await runner.call_many(calls)

Generation (`generate/tool_use.py`) runs the calls a model makes and feeds
their results back; the curation stages (`curate/tool_checks.py`) check
trajectories by format, by running them again, and by a judge. Python
tools run in the sandbox, never in synthloom's process.
"""

from .calls import ToolCall, as_list, calls_in, format_problem, make_call, problem_kind, schemas_of, tool_results
from .catalog import Tool, Toolset
from .runner import CallResult, ToolRunner, empty, load_toolset, run_calls

__all__ = [
    "CallResult",
    "Tool",
    "ToolCall",
    "ToolRunner",
    "Toolset",
    "as_list",
    "calls_in",
    "empty",
    "format_problem",
    "load_toolset",
    "make_call",
    "problem_kind",
    "run_calls",
    "schemas_of",
    "tool_results",
]
