"""synthloom: LLM-driven synthetic data generation, curation and evaluation.

    import synthloom
    result = synthloom.run("examples/sms_spam.yaml", out="runs/sms_spam")
    print(result.metrics)
"""

from ._version import __version__
from .execute import CurationRun, RunResult, curate_data, evaluate_file, run
from .recipe import Recipe, RecipeError, load_recipe
from .records import Record, read_records, write_records

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
