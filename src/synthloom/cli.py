"""The `synthloom` command: thin commands over the library.

Errors a user can fix (a recipe, a data file, a missing package) print one
line naming what and where, and exit with status 2; a run stopped early by
failing requests exits with 1; Ctrl-C exits with 130. Either way, finished
answers are already in the run's cache and the same command resumes.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="LLM-driven synthetic data: generate labelled data, curate it, measure it.",
)


class UserError(Exception):
    """A problem the user can fix; printed on one line, exit status 2."""


@app.command()
def validate(recipe: Path = typer.Argument(..., help="a recipe YAML file")) -> None:
    """Check a recipe without running it."""
    from .recipe import load_recipe

    loaded = load_recipe(recipe)
    typer.echo(
        f"{recipe}: ok ({loaded.name}: {loaded.generation.records} records, "
        f"model {loaded.model.backend}, {len(loaded.curation)} curation and "
        f"{len(loaded.evaluation)} evaluation stages)"
    )


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="a recipe YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default: runs/<name>)"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="cap the number of records"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    executor: str = typer.Option("local", "--executor", help="where to run: local (this process) or ray (a Ray cluster)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (--executor ray; default: RAY_ADDRESS or a new local cluster)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="generation shards at once (--executor ray; default: the cluster's CPUs)"),
) -> None:
    """Generate, curate and evaluate a recipe into a run directory (resumable)."""
    from .llm import RunAborted
    from .recipe import load_recipe
    from .run import run as run_recipe

    loaded = load_recipe(recipe)
    out = out or Path("runs") / loaded.name
    chosen = _executor(executor, address, workers, progress)
    try:
        result = run_recipe(loaded, out, limit=limit, progress=progress, executor=chosen)
    except RunAborted as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"finished answers are saved in {out / 'cache.sqlite'}; rerun the same command to resume", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; finished answers are saved in {out / 'cache.sqlite'}; rerun the same command to resume", err=True)
        raise typer.Exit(130)
    counts = result.manifest["counts"]
    calls = result.manifest["model_calls"]
    typer.echo(
        f"{counts['generated']} records generated ({counts['failed']} failed), {counts['curated']} kept; "
        f"{calls['model_calls']} model calls, {calls['served_from_cache']} answers from cache"
    )
    for note in result.manifest.get("notes", []):
        typer.echo(f"note: {note}")
    downstream = result.metrics.get("downstream", {})
    if "macro_f1" in downstream:
        typer.echo(
            f"downstream on real test data: accuracy {downstream['accuracy']:.3f}, "
            f"macro-F1 {downstream['macro_f1']:.3f} ({downstream['n_test']} test rows)"
        )
    typer.echo(f"report: {result.report.resolve()}")


def _executor(name: str, address: str | None, workers: int | None, progress: bool):
    """The executor `--executor` names (None: the local one)."""
    if name == "local":
        if address is not None or workers is not None:
            raise UserError("--address and --workers need --executor ray")
        return None
    if name != "ray":
        raise UserError(f"--executor: unknown executor {name!r}; expected local or ray")
    try:
        from .distributed import ClusterError, RayExecutor
    except ImportError as exc:
        raise UserError(f"--executor ray needs Ray: pip install 'synthloom[ray]' ({exc})") from None
    chosen = RayExecutor(address=address, workers=workers)
    try:
        chosen.connect(progress)
    except ClusterError as exc:
        raise UserError(str(exc)) from None
    return chosen


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Rebuild report.html of a run directory from its files."""
    from .report import build_report

    if not (run_dir / "manifest.json").exists():
        raise UserError(f"{run_dir}: not a run directory (no manifest.json)")
    typer.echo(f"report: {build_report(run_dir).resolve()}")


@app.command()
def backends() -> None:
    """List the model backends this installation knows."""
    from .llm import backend_names

    for name in backend_names():
        typer.echo(name)


def main(argv: list[str] | None = None) -> None:
    from .records import DataError
    from .recipe import RecipeError
    from .templating import TemplateError

    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (RecipeError, DataError, TemplateError, UserError) as exc:
        _print_and_exit(str(exc), 2)
    except FileNotFoundError as exc:
        _print_and_exit(f"{exc.filename}: file not found", 2)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        _print_and_exit(
            f"{exc.filename or 'a file'}: no space left on device; what was saved before is intact: "
            "free some space and rerun the same command to resume",
            1,
        )
    except KeyboardInterrupt:
        _print_and_exit("interrupted", 130)
    except Exception as exc:
        # Usage errors from the command-line parser (typer may vendor its own click).
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            _print_and_exit("aborted", 130)
        raise


def _print_and_exit(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
