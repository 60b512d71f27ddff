"""Running model-written code: in a child process, never in synthloom's, with limits and no network.

    from synthloom.sandbox import Limits, Sandbox
    with Sandbox(Limits(wall_seconds=5, memory_mb=512)) as box:
        result = box.run("print(sum(range(10)))")
        result.status, result.stdout, result.error, result.isolation

The verifiers (`python_exec`, `sql_exec`, `math_answer` in curate/) and any
evaluation that runs code go through here. What is and is not guaranteed:
docs/curation.md, "The sandbox".
"""

from ._isolate import Walls, probe
from .run import Limits, Program, Result, Sandbox, classify

__all__ = ["Limits", "Program", "Result", "Sandbox", "Walls", "classify", "probe"]
