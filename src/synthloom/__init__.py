"""synthloom: LLM-driven synthetic data generation, curation and evaluation.

    import synthloom
    result = synthloom.run("examples/sms_spam.yaml", out="runs/sms_spam")
    print(result.metrics)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .execute import CurationRun, RunResult, curate_data, evaluate_file, run
    from .recipe import Recipe, RecipeError, load_recipe
    from .records import Record, read_records, write_records

# The public names, imported on first use: `import synthloom` (and so every command,
# `synthloom --version` and `--help` too) does not pay for pyarrow, numpy and the rest.
_LAZY = {
    **dict.fromkeys(("CurationRun", "RunResult", "curate_data", "evaluate_file", "run"), "execute"),
    **dict.fromkeys(("Recipe", "RecipeError", "load_recipe"), "recipe"),
    **dict.fromkeys(("Record", "read_records", "write_records"), "records"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "CurationRun",
    "Record",
    "Recipe",
    "RecipeError",
    "RunResult",
    "__version__",
    "curate_data",
    "evaluate_file",
    "load_recipe",
    "read_records",
    "run",
    "write_records",
]
