"""The `synthloom` command: thin commands over the library.

Errors a user can fix (a recipe, a data file, a missing package) print one
line naming what and where, and exit with status 2; a run stopped early by
failing requests exits with 1; Ctrl-C exits with 130. Either way, finished
answers are already in the run's cache and the same command resumes.

It is long (over 400 lines) because it holds every command, each a few
lines of options over one library call; no logic lives here.
"""

from __future__ import annotations

import errno
import json
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


def _print_versions(value: bool) -> None:
    if not value:
        return
    from ._version import versions

    for name, number in versions().items():
        typer.echo(f"{name} {number}")
    raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_versions, is_eager=True,
        help="print the versions of synthloom, its key packages and the embedded model, then exit",
    ),
) -> None:
    """LLM-driven synthetic data: generate labelled data, curate it, measure it."""


@app.command()
def validate(recipe: Path = typer.Argument(..., help="a recipe YAML file (or a stages file for `curate --stages`)")) -> None:
    """Check a recipe and read every file it names (seeds, inputs, test data), without running it."""
    from .execute.check_files import validate_file

    checked = validate_file(recipe)
    typer.echo(f"{recipe}: ok ({checked.summary})")
    for line in checked.files:
        typer.echo(f"  read {line}")
    for note in checked.notes:
        typer.echo(f"note: {note}")


@app.command()
def init(
    source: Path = typer.Option(..., "--from", help="a labelled file: CSV, TSV, JSONL, Parquet or a saved Hugging Face dataset folder"),
    out: Path = typer.Option(Path("recipe.yaml"), "--out", "-o", help="the recipe to write (the support set goes beside it)"),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="the text column (default: text, sentence, ... or the longest)"),
    label_field: Optional[str] = typer.Option(None, "--label-field", help="the label column (default: label, category, ...)"),
    per_class: int = typer.Option(10, "--per-class", min=1, help="real examples per label in the support set"),
    test: Optional[Path] = typer.Option(None, "--test", help="labelled test data (default: a stratified 20% split of --from)"),
    columns: Optional[str] = typer.Option(None, "--columns", help="column names of files without a header, e.g. label,text"),
    records: Optional[int] = typer.Option(None, "--records", min=1, help="synthetic records to make (default: 20 per label, 100 to 1000)"),
    seed: int = typer.Option(0, "--seed", help="seed of the split and the support sample"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing recipe"),
) -> None:
    """Write a commented recipe from a labelled file: support set, support-anchored curation, a downstream comparison."""
    from .execute.init_recipe import init_recipe

    result = init_recipe(
        source, out, text_field=text_field, label_field=label_field, per_class=per_class, test=test,
        columns=columns.split(",") if columns else None, seed=seed, records=records, force=force,
    )
    typer.echo(f"wrote {result.recipe} ({len(result.labels)} labels, {result.train_rows} training rows)")
    typer.echo(f"wrote {result.support} (the support set)")
    typer.echo(f"test data: {result.test}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"next: describe the labels in {result.recipe}, then `synthloom run {result.recipe} --limit 20`")


@app.command()
def plan(
    recipe: Path = typer.Argument(..., help="a recipe YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="a run directory whose answers refine the estimate"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="cap the number of records"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """What a run will cost: calls, tokens and money per stage. Nothing is sent."""
    from .execute.plan import plan_run

    result = plan_run(recipe, limit=limit, out=out)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo("\n".join(result.lines()))


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
    from .execute import run as run_recipe
    from .llm import RunAborted
    from .llm.spend import BudgetExceeded
    from .recipe import load_recipe

    loaded = load_recipe(recipe)
    out = out or Path("runs") / loaded.name
    chosen = _executor(executor, address, workers, progress)
    if getattr(loaded.model, "mode", "online") == "batch" and chosen is not None:
        raise UserError("model.mode: batch runs on the local executor (its ledger of batches is the run directory's); "
                        "run without --executor ray")
    _print_estimate(loaded, limit, out)
    try:
        result = run_recipe(loaded, out, limit=limit, progress=progress, executor=chosen)
    except BudgetExceeded as exc:
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(3)
    except RunAborted as exc:
        if exc.fixable:  # a setting the provider refuses: one line naming it, nothing was lost
            raise UserError(str(exc)) from None
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
    if "settings" in downstream:
        from .report.card import downstream_summary

        typer.echo(downstream_summary(downstream))
    typer.echo(f"report: {result.report.resolve()}")


def _print_estimate(recipe, limit: int | None, out: Path) -> None:
    """The plan's total, on one line, before a run starts (never stops the run)."""
    from .execute.plan import plan_run

    try:
        total = plan_run(recipe, limit=limit, out=out, sample=200).total  # 200 prompts counted, then scaled
    except Exception:  # noqa: BLE001 - the run itself reports what is wrong, on one line
        return
    prompt = "?" if total.prompt_tokens is None else f"{total.prompt_tokens:,}"
    money = f", about {total.money:.4f} in money" if total.money else ""  # a local model costs nothing but time
    typer.echo(f"estimate: {total.calls:,} model calls, {prompt} prompt and up to {total.completion_tokens:,} "
               f"completion tokens{money} (synthloom plan shows each stage)", err=True)


def _executor(name: str, address: str | None, workers: int | None, progress: bool):
    """The executor `--executor` names (None: the local one)."""
    if name == "local":
        if address is not None or workers is not None:
            raise UserError("--address and --workers need --executor ray")
        return None
    if name != "ray":
        raise UserError(f"--executor: unknown executor {name!r}; expected local or ray")
    try:
        from .execute.ray_executor import ClusterError, RayExecutor
    except ImportError as exc:
        raise UserError(f"--executor ray needs Ray: pip install 'synthloom[ray]' ({exc})") from None
    chosen = RayExecutor(address=address, workers=workers)
    try:
        chosen.connect(progress)
    except ClusterError as exc:
        raise UserError(str(exc)) from None
    return chosen


@app.command()
def curate(
    data: list[str] = typer.Argument(..., help="a JSONL/CSV/TSV/Parquet file or folder, a saved Hugging Face dataset, or hf:NAME; "
                                     "several are curated as one set (e.g. the curated.parquet of a generation, an augmentation "
                                     "and an annotation run, for support_choice to choose among)"),
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="take the stages (and labels) from this recipe"),
    stages: Optional[Path] = typer.Option(None, "--stages", "-s", help="a stages file (see docs/curation.md)"),
    out: Path = typer.Option(..., "--out", "-o", help="where to write curated.parquet, rejected.parquet, curation.json"),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="the text column (default: text)"),
    label_field: Optional[str] = typer.Option(None, "--label-field", help="the label column (default: label)"),
    split: Optional[str] = typer.Option(None, "--split", help="the split of a Hugging Face dataset"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
) -> None:
    """Run curation stages on existing data (not only data generated here); several inputs are one set."""
    from .llm import RunAborted
    from .execute import curate_data

    if (recipe is None) == (stages is None):
        raise UserError("give the stages with --recipe RECIPE or --stages FILE (one of them)")
    try:
        result = curate_data(
            data, out, recipe=recipe, stages=stages, text_field=text_field, label_field=label_field,
            split=split, progress=progress,
        )
    except RunAborted as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"answers so far are saved in {out / 'cache.sqlite'}; rerun the same command to resume", err=True)
        raise typer.Exit(1)
    summary = result.summary
    for note in summary["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"{'stage':<22}{'seen':>8}{'kept':>8}{'dropped':>9}{'relabelled':>12}{'reweighted':>12}")
    for step in summary["curation"]["funnel"]:
        typer.echo(
            f"{step['stage']:<22}{step['seen']:>8}{step['kept']:>8}{step['dropped']:>9}"
            f"{step['relabelled']:>12}{step['reweighted']:>12}"
        )
    counts = summary["counts"]
    typer.echo(f"{counts['curated']} of {counts['records']} records kept: {(result.out / 'curated.parquet').resolve()}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Rebuild report.html and the dataset card (README.md) of a run directory from its files."""
    from .report import build_card, build_report

    if not (run_dir / "manifest.json").exists():
        raise UserError(f"{run_dir}: not a run directory (no manifest.json)")
    build_card(run_dir)
    typer.echo(f"report: {build_report(run_dir).resolve()}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="a run directory (or a records file: Parquet, JSONL)"),
    format: str = typer.Option("messages", "--format", "-f", help="messages, prompt-completion or preference (TRL's dataset forms)"),
    out: Path = typer.Option(..., "--out", "-o", help="a .jsonl or .parquet file, or a folder for a datasets.DatasetDict (save_to_disk)"),
    split: str = typer.Option("train", "--split", help="the split's name"),
    hub_repo: Optional[str] = typer.Option(None, "--hub-repo", help="also push to this Hugging Face dataset repository (user/name)"),
    hub_token: Optional[str] = typer.Option(None, "--hub-token", help="the hub token (default: HF_TOKEN)", envvar="HF_TOKEN"),
    private: bool = typer.Option(False, "--private", help="create the hub repository private"),
) -> None:
    """Export a run's curated records for post-training: JSONL, Parquet or a DatasetDict, and the hub."""
    from .execute.export import export_run

    result = export_run(run_dir, format, out, split=split, hub_repo=hub_repo, token=hub_token, private=private)
    typer.echo(f"{len(result.rows)} rows ({format}): {out.resolve()}")
    if result.uploaded:
        typer.echo(f"pushed to {hub_repo}: {', '.join(result.uploaded)}")


@app.command()
def finetune(
    run_dir: Path = typer.Argument(..., help="a run directory (or a records file: Parquet, JSONL)"),
    out: Path = typer.Option(..., "--out", "-o", help="a folder: checkpoints while training, the model in <out>/model"),
    method: str = typer.Option("sft", "--method", help="sft (instruction/response, messages) or dpo (prompt/chosen/rejected)"),
    model: Optional[str] = typer.Option(None, "--model", help="a local Hugging Face folder, a .gguf file or a cached hub id (default: the embedded SmolLM2-135M-Instruct)"),
    full: bool = typer.Option(False, "--full", help="train every weight instead of a LoRA adapter"),
    epochs: float = typer.Option(1.0, "--epochs", min=0.01),
    max_steps: int = typer.Option(-1, "--max-steps", help="stop after this many steps (-1: the epochs decide)"),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    learning_rate: Optional[float] = typer.Option(None, "--lr", help="default: 2e-4 with LoRA, 2e-5 full"),
    max_length: int = typer.Option(256, "--max-length", min=16, help="tokens per example"),
    gguf: bool = typer.Option(False, "--gguf", help="also write model.gguf for llama.cpp (needs llama.cpp's convert_hf_to_gguf.py)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fine-tune a language model on a run's records (TRL SFT or DPO, LoRA by default); Ctrl-C saves, a rerun resumes."""
    from .execute.finetune import finetune_run
    from .train.lm import LMSettings, TrainingInterrupted

    if method not in ("sft", "dpo"):
        raise UserError(f"--method: unknown method {method!r}; expected sft or dpo")
    settings = LMSettings(method=method, model=model, lora=not full, epochs=epochs, max_steps=max_steps,  # type: ignore[arg-type]
                          batch_size=batch_size, learning_rate=learning_rate, max_length=max_length, seed=seed)
    try:
        done = finetune_run(run_dir, out, settings, gguf=gguf)
    except TrainingInterrupted as exc:
        typer.echo(f"interrupted at step {exc.step}: checkpoint saved in {exc.checkpoint}; run the same command to resume", err=True)
        raise typer.Exit(130)
    r = done.result
    resumed = f", resumed from step {r.resumed_from}" if r.resumed_from else ""
    typer.echo(f"{r.rows} rows, {r.steps} steps{resumed}, loss {r.first_loss:.3f} -> {r.last_loss:.3f}, {r.seconds:.0f} s")
    typer.echo(f"model: {r.model_dir.resolve()}")
    if done.gguf:
        typer.echo(f"gguf: {done.gguf.resolve()}")
    elif done.gguf_note:
        typer.echo(done.gguf_note, err=True)


@app.command()
def pairs(
    data: Path = typer.Argument(..., help="prompts: a run directory's curated records or a data file (JSONL, Parquet, ...)"),
    out: Path = typer.Option(..., "--out", "-o", help="a folder for curated.parquet (the pairs) and manifest.json"),
    responses: int = typer.Option(2, "--responses", "-n", min=2, help="responses per prompt (different samples)"),
    system_prompt: Optional[list[str]] = typer.Option(None, "--system-prompt", help="one response per system prompt (give two or more)"),
    prompt_field: Optional[str] = typer.Option(None, "--prompt-field", help="the prompt column (default: the first field)"),
    scorer: str = typer.Option("pairwise", "--scorer", help="pairwise (judge, both orders), rubric (judge, 1-10), math_answer (verifier) or reward (a reward model: --reward-url)"),
    rubric: Optional[str] = typer.Option(None, "--rubric", help="what the rubric judge grades by"),
    reference_field: str = typer.Option("reference", "--reference-field", help="math_answer: the reference answer's column"),
    min_margin: float = typer.Option(0.5, "--min-margin", min=0, help="drop pairs whose score margin is below this"),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1, help="per response"),
    seed: int = typer.Option(0, "--seed"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="an OpenAI-compatible server writing the responses (default: the embedded model)"),
    model: Optional[str] = typer.Option(None, "--model", help="the model name at --base-url"),
    reward_url: Optional[str] = typer.Option(None, "--reward-url", help="reward: the reward model's OpenAI-compatible server (it must give logprobs)"),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", help="reward: the model name at --reward-url"),
) -> None:
    """Preference pairs: several responses per prompt, scored; the best against the worst, with the margin."""
    from .execute.preference import DEFAULT_RUBRIC, PairSettings, make_pairs, write_pairs
    from .records import read_records

    from .llm import config_for

    if scorer not in ("pairwise", "rubric", "math_answer", "reward"):
        raise UserError(f"--scorer: unknown scorer {scorer!r}; expected pairwise, rubric, math_answer or reward")
    if (scorer == "reward") != (reward_url is not None):
        raise UserError("--reward-url: give it with --scorer reward (and only then)")
    if model is not None and base_url is None:
        raise UserError("--model names a model at --base-url; give --base-url too")
    if system_prompt is not None and len(system_prompt) < 2:
        raise UserError("--system-prompt: give two or more (one response each)")
    source = data / "curated.parquet" if data.is_dir() else data
    if not source.exists():
        raise UserError(f"{source}: file not found")
    records = read_records(source, text_field=prompt_field)
    settings = PairSettings(responses=responses, system_prompts=tuple(system_prompt or ()), prompt_field=prompt_field,
                            scorer=scorer, rubric=rubric or DEFAULT_RUBRIC, reference_field=reference_field,  # type: ignore[arg-type]
                            min_margin=min_margin, max_tokens=max_tokens, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    try:
        responder = config_for("openai", base_url=base_url, model=model or "default") if base_url else None
        reward = config_for("openai", base_url=reward_url, model=reward_model or "default") if reward_url else None
    except ValueError as exc:
        raise UserError(f"--base-url/--reward-url: {exc}".replace("\n", " ")) from None
    result = make_pairs(records, settings, model=responder, judge=reward, cache=out / "cache.sqlite")
    path = write_pairs(result, out, settings, str(data))
    typer.echo(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.counts.items()))
    typer.echo(f"{len(result.pairs)} pairs: {path.resolve()}")


@app.command()
def evaluate(
    data: Path = typer.Argument(..., help="a dataset file: Parquet, JSONL, CSV or TSV (or a folder of them)"),
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="real data to compare with and test on"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output directory (default: <DATA stem>-evaluation)"),
    text_field: Optional[str] = typer.Option(None, help="the text column of DATA (default: the first)"),
    label_field: Optional[str] = typer.Option(None, help="the label column of DATA (default: `label` when present)"),
    reference_columns: Optional[str] = typer.Option(None, help="column names of a reference file without a header, e.g. label,text"),
    reference_text_field: Optional[str] = typer.Option(None, help="the text column of the reference (default: DATA's)"),
    trainer: str = typer.Option("embedding_logreg", help="embedding_logreg, tfidf_linear or finetune_minilm"),
    judge: int = typer.Option(0, "--judge", min=0, help="judge the faithfulness of this many sampled records (embedded model)"),
    task: Optional[str] = typer.Option(None, help="what a record is, for the judge: 'SMS messages'"),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="a QA or generative benchmark (adversarial_qa, truthful_qa, math, ...): the records as worked examples for the embedded model answering its test questions, against zero-shot"),
    benchmark_path: Optional[Path] = typer.Option(None, "--benchmark-path", help="a local copy of the benchmark (default: the Hugging Face hub)"),
    shots: int = typer.Option(3, "--shots", min=1, help="records shown as worked examples per question (--benchmark)"),
    n: int = typer.Option(50, "--n", min=1, help="test questions answered (--benchmark)"),
    answer_field: str = typer.Option("answer", "--answer-field", help="the column of DATA with the answers (--benchmark)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
) -> None:
    """Evaluate any dataset file: diversity; with --reference, fidelity and a classifier tested on it;
    with --benchmark, a model answering a QA benchmark with the records as worked examples."""
    from .evaluate import BENCHMARKS, TRAINERS
    from .execute import evaluate_file
    from .recipe.evaluation import ANSWERED_BENCHMARKS

    if trainer not in TRAINERS:
        raise UserError(f"--trainer: unknown trainer {trainer!r}; known: {', '.join(TRAINERS)}")
    if reference is not None and not reference.exists():
        raise UserError(f"{reference}: file not found (--reference)")
    if benchmark is not None:
        if benchmark not in BENCHMARKS:
            raise UserError(f"--benchmark: unknown benchmark {benchmark!r}; known: {', '.join(ANSWERED_BENCHMARKS)}")
        if benchmark not in ANSWERED_BENCHMARKS:
            raise UserError(
                f"--benchmark: {benchmark} is a classification benchmark; evaluate with --reference "
                f"(a classifier trained on DATA), or answer one of: {', '.join(ANSWERED_BENCHMARKS)}"
            )
    elif benchmark_path is not None:
        raise UserError("--benchmark-path needs --benchmark")
    if benchmark_path is not None and not benchmark_path.exists():
        raise UserError(f"{benchmark_path}: file not found (--benchmark-path)")
    result = evaluate_file(
        data, out, reference=reference, text_field=text_field, label_field=label_field,
        reference_columns=reference_columns.split(",") if reference_columns else None,
        reference_text_field=reference_text_field, trainer=trainer, judge_sample=judge, task=task,
        benchmark=benchmark, benchmark_path=benchmark_path, shots=shots, n=n, answer_field=answer_field,
        progress=progress,
    )
    metrics = json.loads((result / "metrics.json").read_text())
    diversity = metrics.get("diversity", {})
    typer.echo(f"{diversity.get('records', 0)} records: distinct-2 {diversity.get('distinct_2', 0):.3f}" + (
        f", Vendi score {diversity['vendi_score']:.1f}" if "vendi_score" in diversity else ""))
    if "two_sample_auc" in metrics.get("fidelity", {}):
        f = metrics["fidelity"]
        typer.echo(f"against the reference: two-sample AUC {f['two_sample_auc']:.3f}, precision {f['precision']:.3f}, recall {f['recall']:.3f}")
    if "macro_f1" in metrics.get("downstream", {}):
        from .report.card import downstream_summary

        d = metrics["downstream"]
        typer.echo(f"trained on DATA, tested on the reference: accuracy {d['accuracy']:.3f}, macro-F1 {d['macro_f1']:.3f} ({d['n_test']} rows)")
        typer.echo(downstream_summary(d))
    if "faithful" in metrics.get("faithfulness", {}):
        f = metrics["faithfulness"]["faithful"]
        typer.echo(f"faithful (judge, n={f['n']}): {f['share']:.1%} [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}]")
    if "settings" in metrics.get("answering", {}):
        from .report.card import answering_scores

        answering = metrics["answering"]
        typer.echo(f"{answering['benchmark']}, {answering['shots']} records as worked examples per question: "
                   + answering_scores(answering))
    typer.echo(f"report: {(result / 'report.html').resolve()}")


@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="files, folders or globs of PDF, HTML, Markdown, DOCX or text"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for chunks.parquet and ingest.json"),
    max_tokens: int = typer.Option(254, "--max-tokens", min=1, help="token budget of a chunk (what the bundled MiniLM embeds whole)"),
    overlap: int = typer.Option(32, "--overlap", min=0, help="tokens a chunk repeats from the one before"),
) -> None:
    """Read documents, chunk them by structure, write the chunks as Parquet; unreadable files are listed."""
    from .sources import ingest_to_parquet

    if overlap >= max_tokens:
        raise UserError(f"--overlap ({overlap}) must be smaller than --max-tokens ({max_tokens})")
    result = ingest_to_parquet(paths, out, max_tokens=max_tokens, overlap=overlap)
    for error in result.errors:
        typer.echo(f"error: {error}", err=True)
    if result.path is None:
        raise UserError("no document could be read" + (" (see the errors above)" if result.errors else ""))
    typer.echo(f"{len(result.documents)} documents, {len(result.chunks)} chunks -> {result.path}"
               + (f"; {len(result.errors)} files could not be read" if result.errors else ""))


@app.command()
def backends() -> None:
    """List the model backends this installation knows."""
    from .llm import backend_names

    for name in backend_names():
        typer.echo(name)


@app.command("review")
def review_cmd(
    path: Path = typer.Argument(..., help="a run directory, or any dataset file"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="port (default: a free one)"),
    token: Optional[str] = typer.Option(None, "--token", help="the access token (default: a new random one)"),
    rejected: bool = typer.Option(False, "--rejected", help="also show the records curation dropped"),
    overlap: Optional[int] = typer.Option(None, "--overlap", min=1, help="at most this many reviewers per record (default: everyone sees everything)"),
    open_browser: bool = typer.Option(False, "--open", help="open the page in a browser"),
) -> None:
    """Review records in a local web app: accept, relabel, edit, reject; decisions saved as made."""
    from .review import ReviewSet, ReviewSettings, serve

    review_set = ReviewSet.load(path, rejected=rejected)
    if token is not None and len(token) < 16:
        raise UserError("--token: use at least 16 characters")

    def ready(url: str) -> None:
        typer.echo(f"reviewing {len(review_set.records)} records of {review_set.name}; decisions go to {review_set.store_path}")
        typer.echo(f"open {url}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"note: listening on {host}; anyone who can reach it and has this URL can review", err=True)
        typer.echo("press Ctrl-C to stop (every decision is already saved)")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        serve(review_set, ReviewSettings(host=host, port=port, token=token, overlap=overlap), ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command("apply-reviews")
def apply_reviews_cmd(
    path: Path = typer.Argument(..., help="a run directory, or the dataset file that was reviewed"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="for a dataset file: where to write (default: <name>.reviewed.parquet)"),
) -> None:
    """Write people's labels and edits into the curated data (curated.parquet)."""
    from .review import apply_reviews

    result = apply_reviews(path, out)
    typer.echo(result.summary())
    if result.conflicts:
        typer.echo(f"conflicts (reviewers disagree; left unchanged): {', '.join(result.conflicts[:20])}"
                   + (" ..." if len(result.conflicts) > 20 else ""))
    typer.echo(f"wrote {result.curated}")


_FORMATS = ("label-studio", "argilla")


def _format_of(file: Path, given: Optional[str]) -> str:
    if given is not None:
        if given not in _FORMATS:
            raise UserError(f"--format: expected one of {', '.join(_FORMATS)}, got {given!r}")
        return given
    return "argilla" if file.suffix == ".jsonl" else "label-studio"


@app.command("export-reviews")
def export_reviews_cmd(
    path: Path = typer.Argument(..., help="a run directory, or any dataset file"),
    out: Path = typer.Option(..., "--out", "-o", help="the file to write (.json: Label Studio, .jsonl: Argilla)"),
    format: Optional[str] = typer.Option(None, "--format", help="label-studio or argilla (default: from the suffix)"),
    rejected: bool = typer.Option(False, "--rejected", help="also export the records curation dropped"),
) -> None:
    """Export review tasks for Label Studio or Argilla (with the decisions made so far)."""
    from .review import ReviewSet, ReviewStore, export_argilla, export_label_studio

    review_set = ReviewSet.load(path, rejected=rejected)
    kind = _format_of(out, format)
    with ReviewStore(review_set.store_path) as store:
        written = (export_argilla if kind == "argilla" else export_label_studio)(review_set, out, store)
    typer.echo(f"wrote {len(review_set.records)} {kind} tasks to {written}")
    if kind == "label-studio":
        typer.echo(f"labeling config: {written.with_suffix('.xml')}")


@app.command("import-reviews")
def import_reviews_cmd(
    path: Path = typer.Argument(..., help="the run directory (or dataset file) the tasks came from"),
    file: Path = typer.Argument(..., help="a Label Studio JSON export or Argilla records (JSON lines)"),
    format: Optional[str] = typer.Option(None, "--format", help="label-studio or argilla (default: from the suffix)"),
) -> None:
    """Import decisions made in Label Studio or Argilla into the run's reviews."""
    from .review import ReviewSet, ReviewStore, import_argilla, import_label_studio

    review_set = ReviewSet.load(path, rejected=True)
    kind = _format_of(file, format)
    if not file.exists():
        raise UserError(f"{file}: file not found")
    with ReviewStore(review_set.store_path) as store:
        count = (import_argilla if kind == "argilla" else import_label_studio)(file, review_set, store)
    typer.echo(f"imported {count} decisions from {file} into {review_set.store_path}")


@app.command("select")
def select_cmd(
    inputs: Path = typer.Argument(..., help="unlabelled inputs: a JSONL, CSV, TSV or Parquet file"),
    labels: str = typer.Option(..., "--labels", help="the labels, comma-separated"),
    budget: str = typer.Option("10%", "--budget", help="records for people: a count (50), a share (10%), or cost:AMOUNT"),
    out: Path = typer.Option(..., "--out", "-o", help="the directory to write (then: synthloom review DIR)"),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="the column holding the text (default: the first)"),
    method: str = typer.Option("logprob", "--method", help="model confidence: logprob, votes (self-consistency) or both"),
    samples: int = typer.Option(5, "--samples", min=2, help="answers sampled per record for votes"),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="divide out the model's leaning on an empty input"),
    demonstrations: Optional[Path] = typer.Option(None, "--demonstrations", help="labelled examples shown to the model"),
    diversity: float = typer.Option(0.2, "--diversity", min=0.0, help="how much to avoid picking near-duplicates"),
    human_cost: float = typer.Option(1.0, "--human-cost", min=0.0, help="cost of one human label"),
    model_cost: float = typer.Option(0.0, "--model-cost", min=0.0, help="cost of one model label"),
    human_accuracy: float = typer.Option(1.0, "--human-accuracy", min=0.0, max=1.0, help="how often people are right"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="an OpenAI-compatible server (default: the embedded model)"),
    model: Optional[str] = typer.Option(None, "--model", help="the model name at --base-url"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="only the first N inputs"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Selective annotation: the model labels everything; the least confident, diverse records go to people."""
    from .llm import config_for, create_backend
    from .records import read_records
    from .review.annotate import selective_annotation

    if method not in ("logprob", "votes", "both"):
        raise UserError(f"--method: expected logprob, votes or both, got {method!r}")
    names = [l.strip() for l in labels.split(",") if l.strip()]
    records = read_records(inputs, text_field=text_field)
    records = records[:limit] if limit else records
    demos = read_records(demonstrations, text_field=text_field) if demonstrations else []
    unknown = sorted({d.label for d in demos} - set(names) - {None})
    if unknown:
        raise UserError(f"{demonstrations}: labels {unknown} are not among --labels")
    backend = None
    if base_url:
        backend = create_backend(config_for("openai", base_url=base_url, model=model or "default"))
    try:
        result = selective_annotation(
            records, names, out, budget, backend=backend, method=method, samples=samples,  # type: ignore[arg-type]
            calibrate=calibrate,
            demonstrations=demos, diversity=diversity, human_accuracy=human_accuracy,
            human_cost=human_cost, model_cost=model_cost, progress=progress, name=inputs.stem,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    typer.echo(result.summary())
    typer.echo(f"next: synthloom review {out}   then: synthloom apply-reviews {out}")


# Errors a user can fix, by the module that defines each. Only modules a command imported
# can have raised one, so they are looked up, never imported: `--version` and `--help`
# stay fast.
_USER_ERRORS = (
    ("synthloom.recipe.loader", "RecipeError"),
    ("synthloom.records", "DataError"),
    ("synthloom.templating", "TemplateError"),
    ("synthloom.train.classifiers", "TrainingError"),
    ("synthloom.review.store", "ReviewError"),
    ("synthloom.execute.export", "ExportError"),
)


class _FixableError(Exception):
    """Stands for the user-fixable error classes of `_USER_ERRORS` in an `except` clause."""


def _fixable(exc: BaseException) -> bool:
    if isinstance(exc, UserError):
        return True
    for module, name in _USER_ERRORS:
        found = sys.modules.get(module)
        if found is not None and isinstance(exc, getattr(found, name)):
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    try:
        try:
            code = app(args=argv, standalone_mode=False)
        except Exception as exc:
            if _fixable(exc):
                raise _FixableError(str(exc)) from exc
            raise
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _FixableError as exc:
        _print_and_exit(str(exc), 2)
    except FileNotFoundError as exc:
        _print_and_exit(f"{exc.filename}: file not found", 2)
    except ImportError as exc:  # an optional package a stage needs; the message says what to install
        _print_and_exit(str(exc), 2)
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
