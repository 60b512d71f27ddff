"""synthloom: LLM-driven synthetic data generation, curation and evaluation.

    import synthloom
    result = synthloom.run("examples/sms_spam.yaml", out="runs/sms_spam")
    print(result.metrics)
"""

__version__ = "0.1.0"

from .recipe import Recipe, RecipeError, load_recipe  # noqa: E402
from .records import Record, read_records, write_records  # noqa: E402
from .run import CurationRun, RunResult, curate_data, run  # noqa: E402

__all__ = [
    "CurationRun",
    "Record",
    "Recipe",
    "RecipeError",
    "RunResult",
    "__version__",
    "curate_data",
    "load_recipe",
    "read_records",
    "run",
    "write_records",
]
