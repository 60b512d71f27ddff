"""The `finetune` stage on checkable answers: QA by exact match, math by sympy, code by its tests.

When a task's answers can be checked, the base model and the fine-tuned
one answer the same held-out real questions (greedy decoding, the question
as the user turn, as the records were trained) and each answer scores 1 or
0:

- `exact_match`: the answer equals one of the references after SQuAD-style
  normalisation (lower case, no punctuation or articles);
- `math`: the answer's final answer (\\boxed{}, "the answer is ...", else
  the last number) equals the reference by sympy, in the sandbox: the
  `math_answer` verifier's own check;
- `code`: the answer's code followed by the item's tests (assert
  statements) exits cleanly in the sandbox: pass@1 of the greedy answer,
  the `python_exec` verifier's own check.

The two verifiers live in curate/, which evaluate/ does not import: the
caller passes them in as `check(scoring, answers, items)` (execute/ gives
the verifiers; a test may give a scripted check). Each arm's score has a
95% bootstrap interval over the questions, and the difference fine-tuned
minus base is paired (the same questions resampled for both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..records import Record, read_rows
from ..train.lm import train_lm
from ..train.lm_models import LMError, load_model
from ..train.lm_use import generate_answers, question_text
from .benchmarks import load_benchmark, normalise_answer

Scoring = Literal["exact_match", "math", "code"]
# check(scoring, answers, items) -> (passed, reason) per answer; items carry "references" and "tests".
Check = Callable[[str, Sequence[str], Sequence[dict[str, Any]]], list[tuple[bool, str]]]


def exact_match(answers: Sequence[str], items: Sequence[dict[str, Any]]) -> list[tuple[bool, str]]:
    """Normalised exact match against any of each item's references."""
    out = []
    for answer, item in zip(answers, items):
        refs = [normalise_answer(str(r)) for r in item.get("references") or []]
        got = normalise_answer(answer)
        out.append((got in refs, "" if got in refs else f"{got[:60]!r} is not one of {refs[:3]}"))
    return out


def mean_interval(scores: Sequence[float], resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The mean of per-item scores with a percentile bootstrap interval over the items."""
    s = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    means = s[rng.integers(0, len(s), (resamples, len(s)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return {"score": round(float(s.mean()), 4), "score_ci": np.percentile(means, [tail, 100 - tail]).round(4).tolist(), "n": len(s)}


def paired_score_difference(a: Sequence[float], b: Sequence[float], resamples: int = 1000, level: float = 0.95,
                            seed: int = 0) -> dict[str, Any]:
    """Mean of A minus mean of B over the same items, the interval from resampling the items for both."""
    return mean_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), resamples, level, seed)


def finetune_answers(
    records: Sequence[Record], items: Sequence[dict[str, Any]], spec: Any, out: Path, scoring: Scoring, check: Check | None,
    *, progress: bool = False, log: Callable[[str], None] = lambda _: None, data: str = "the records",
) -> dict[str, Any]:
    """Base vs fine-tuned answers to held-out questions (`items`: prompt, references, tests), each answer checked."""
    from .finetune import _curve_sizes, _sample, _settings, sft_rows

    if scoring != "exact_match" and check is None:
        raise LMError(f"finetune: scoring {scoring} needs the verifiers (run it through a recipe or `synthloom evaluate`)")
    rows = sft_rows(records)
    held = _sample(list(items), spec.n_test, spec.seed)
    if len(held) < 2:
        raise LMError(f"finetune: {len(held)} held-out question(s); too few to score")
    for i, item in enumerate(held):
        if scoring == "code" and not str(item.get("tests") or "").strip():
            raise LMError(f"finetune: held-out question {i + 1} has no tests to run its code against")
        if scoring != "code" and not item.get("references"):
            raise LMError(f"finetune: held-out question {i + 1} has no reference answer")
    asked = [[{"role": "user", "content": str(item["prompt"])}] for item in held]

    def run_check(answers: list[str]) -> list[tuple[bool, str]]:
        verdicts = exact_match(answers, held) if scoring == "exact_match" else check(scoring, answers, held)  # type: ignore[misc]
        if len(verdicts) != len(answers):
            raise RuntimeError(f"finetune: the {scoring} check gave {len(verdicts)} verdicts for {len(answers)} answers")
        return verdicts

    def answer_and_score(model_name: str | None) -> tuple[list[str], list[tuple[bool, str]], dict[str, Any]]:
        model, tokenizer = load_model(model_name)
        answers = generate_answers(model, tokenizer, asked, spec.max_new_tokens)
        verdicts = run_check(answers)
        return answers, verdicts, mean_interval([float(ok) for ok, _ in verdicts], spec.bootstrap, seed=spec.seed)

    log(f"finetune: base answers ({scoring})")
    base_answers, base_verdicts, base_score = answer_and_score(spec.model)
    arms: dict[str, Any] = {"base": base_score}
    settings = _settings(spec)
    curve, tuned_answers, tuned_verdicts = [], base_answers, base_verdicts
    shuffled = _sample(rows, len(rows), spec.seed)
    for share, size in _curve_sizes(len(rows), spec.learning_curve):
        log(f"finetune: {size} records ({share:.0%})")
        result = train_lm(shuffled[:size], out / ("synthetic" if share == 1.0 else f"curve-{int(round(share * 100))}"),
                          settings, progress=progress, data_name=f"{data}, records ({size})")
        answers, verdicts, scored = answer_and_score(str(result.model_dir))
        curve.append({"share": share, "records": size, **scored, "steps": result.steps, "loss": [result.first_loss, result.last_loss]})
        if share == 1.0:
            arms["finetuned"] = scored | {"n_train": size, "steps": result.steps, "seconds": round(result.seconds, 1),
                                          "model_dir": str(result.model_dir), "loss": [result.first_loss, result.last_loss]}
            tuned_answers, tuned_verdicts = answers, verdicts
    difference = paired_score_difference([float(ok) for ok, _ in tuned_verdicts], [float(ok) for ok, _ in base_verdicts],
                                         spec.bootstrap, seed=spec.seed)
    examples = [{"prompt": item["prompt"], "base": b, "base_ok": bv[0], "finetuned": t, "finetuned_ok": tv[0], "why": tv[1]}
                for item, b, bv, t, tv in list(zip(held, base_answers, base_verdicts, tuned_answers, tuned_verdicts))[:5]]
    return {"task": "answers", "scoring": scoring, "method": settings.method, "lora": settings.lora,
            "model": spec.model or "smollm2 (embedded)", "n_test": len(held), "arms": arms,
            "differences": {"finetuned_vs_base": difference}, "learning_curve": curve, "examples": examples,
            "model_dir": arms["finetuned"]["model_dir"]}


def checkable_items(spec: Any, scoring: str) -> tuple[list[dict[str, Any]], str]:
    """Held-out questions with what checks their answers: references (exact_match, math) or tests (code)."""
    if spec.benchmark is not None:
        ref = spec.benchmark
        test = load_benchmark(ref.name, ref.split, ref.path, ref.config, seed=spec.seed)
        items = [{"prompt": question_text(r.fields), "references": list(r.meta.get("references") or [])} for r in test]
        return items, f"{ref.name} ({ref.path or 'hub'}, {ref.split})"
    assert spec.prompts is not None
    rows = read_rows(spec.prompts.path, spec.prompts.format, spec.prompts.columns)
    needed = [spec.prompt_field, spec.tests_field if scoring == "code" else spec.reference_field]
    for name in needed:
        if rows and name not in rows[0]:
            raise LMError(f"{spec.prompts.path}: no column {name!r}, which scoring {scoring} reads (columns: {', '.join(rows[0])})")
    items = [{"prompt": str(r[spec.prompt_field]),
              "references": [] if scoring == "code" else [str(r[spec.reference_field])],
              "tests": str(r.get(spec.tests_field) or "") if scoring == "code" else None} for r in rows]
    return items, spec.prompts.path


__all__ = ["Check", "Scoring", "checkable_items", "exact_match", "finetune_answers", "mean_interval", "paired_score_difference"]
