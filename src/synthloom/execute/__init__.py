"""Running things: a recipe into a run directory, and the file-level curate and evaluate commands.

This is the top of the house: it drives generation, curation, evaluation and
the report, and nothing below imports it (only `cli.py` and the package's
`__init__`). Where the work happens is an `Executor`: `LocalExecutor` (this
process) or `ray_executor.RayExecutor` (a Ray cluster; imported on demand,
since Ray is optional).

    run.py            run(), RunResult, producers, the Executor seam, the local executor
    rounds.py         dataset-wise rounds: generate, curate, measure, re-allocate
    validation.py     what the closed loop scores on: validation data, never the test set
    curate_file.py    curate_data(): curation stages over any dataset file
    evaluate_file.py  evaluate_file(): the evaluation of any dataset file
    check_files.py    validate_file(): a recipe and every file it names, read as a run would
    export.py         export_run(): a run in TRL's dataset forms, to files, a DatasetDict, the hub
    preference.py     make_pairs(): responses per prompt, scored by a judge or a verifier, into pairs
    ray_executor.py   the Ray executor (shards, Ray Data curation)
    answer_store.py   the run's answers behind one Ray actor on the driver
    local_cluster.py  a throwaway loopback-only Ray cluster for rehearsals and tests
"""

from .curate_file import CurationRun, curate_data
from .evaluate_file import answering_spec, evaluate_file
from .run import Executor, LocalExecutor, RunResult, run

__all__ = [
    "CurationRun",
    "Executor",
    "LocalExecutor",
    "RunResult",
    "answering_spec",
    "curate_data",
    "evaluate_file",
    "run",
]
