"""The `finetune` stage: does a language model trained on the data get better at the real task?

The records fine-tune a causal language model (`synthloom.train.lm`: TRL
SFT or DPO, LoRA by default, records' weights as loss weights), and the
base model and the fine-tuned one answer the same held-out real prompts,
scored with the task's own measure:

- classification (`test` or a classification benchmark): each model
  chooses one label by likelihood; accuracy and macro-F1 with bootstrap
  intervals, the MiniLM + logistic-regression classifier on the same data
  beside them, and, when real training data is given, the same model
  fine-tuned on as many real examples. Differences are paired (the same
  test rows resampled for both arms) with their intervals;
- open instructions (`prompts`): the judge compares the fine-tuned answer
  with the base model's on each prompt in both orders; the win rate with
  its interval and the judge's position consistency.

A learning curve fine-tunes on shares of the records (25/50/100% by
default); the last share, 100%, is the headline fine-tuned model, whose
weights stay in `<run>/finetune/synthetic/model` with a model card.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..records import Record
from ..train.lm import LMSettings, train_lm
from ..train.lm_models import LMError, load_model
from ..train.lm_use import choose_labels, classification_messages, classification_row, conversation, generate_answers
from .downstream import bootstrap_intervals, fit_and_score, inputs_of, score_predictions


def paired_difference(truth: Sequence[str], a: Sequence[str], b: Sequence[str], resamples: int = 1000,
                      level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Macro-F1 and accuracy of A minus B on the same test rows, with percentile intervals from
    resampling the rows (each resample scores both arms on the same rows)."""
    labels = sorted(set(truth))
    index = {l: i for i, l in enumerate(labels)}
    k = len(labels)
    t = np.array([index[x] for x in truth])
    pa = np.array([index.get(x, k) for x in a])
    pb = np.array([index.get(x, k) for x in b])

    def f1(tb: np.ndarray, pb_: np.ndarray) -> float:
        tp = np.bincount(tb[tb == pb_], minlength=k)[:k]
        denom = np.bincount(tb, minlength=k)[:k] + np.bincount(pb_, minlength=k + 1)[:k]
        return float(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean())

    rng = np.random.default_rng(seed)
    n = len(t)
    d_f1, d_acc = np.empty(resamples), np.empty(resamples)
    for r in range(resamples):
        idx = rng.integers(0, n, n)
        d_f1[r] = f1(t[idx], pa[idx]) - f1(t[idx], pb[idx])
        d_acc[r] = (t[idx] == pa[idx]).mean() - (t[idx] == pb[idx]).mean()
    tail = (1 - level) / 2 * 100
    return {
        "macro_f1": round(f1(t, pa) - f1(t, pb), 4),
        "macro_f1_ci": np.percentile(d_f1, [tail, 100 - tail]).round(4).tolist(),
        "accuracy": round(float((t == pa).mean() - (t == pb).mean()), 4),
        "accuracy_ci": np.percentile(d_acc, [tail, 100 - tail]).round(4).tolist(),
    }


def _sample(items: Sequence[Any], n: int, seed: int) -> list[Any]:
    if len(items) <= n:
        return list(items)
    rng = random.Random(seed)
    return [items[i] for i in sorted(rng.sample(range(len(items)), n))]


def _settings(spec: Any, method: str = "sft") -> LMSettings:
    return LMSettings(method=method, model=spec.model, lora=spec.lora, epochs=spec.epochs, max_steps=spec.max_steps or -1,
                      batch_size=spec.batch_size, learning_rate=spec.learning_rate, max_length=spec.max_length, seed=spec.seed)


def _curve_sizes(n: int, shares: Sequence[float] | None) -> list[tuple[float, int]]:
    shares = sorted(set(shares or [1.0]) | {1.0})
    return [(s, max(2, round(n * s))) for s in shares]


def finetune_classification(
    records: Sequence[Record], test: Sequence[Record], spec: Any, out: Path, *, labels: dict[str, str | None],
    task: str | None = None, fields: Sequence[str] | None = None, real_train: Sequence[Record] | None = None,
    embedder: Any = None, progress: bool = False, log: Callable[[str], None] = lambda _: None, data: str = "the records",
) -> dict[str, Any]:
    """Base vs fine-tuned (vs fine-tuned on as many real examples) as label-choosing classifiers on `test`."""
    train = [r for r in records if r.label is not None]
    if len(train) < 2:
        raise LMError(f"finetune: {len(train)} labelled record(s); fine-tuning needs at least 2")
    test = _sample([r for r in test if r.label is not None], spec.n_test, spec.seed)
    if len(test) < 2:
        raise LMError(f"finetune: {len(test)} labelled test row(s); too few to score")
    names = dict(labels)
    for label in sorted({r.label for r in train} | {r.label for r in test}):
        names.setdefault(label, None)
    label_list = list(names)
    test_inputs = inputs_of(test, fields)
    prompts = [classification_messages(x, names, task) for x in test_inputs]
    truth = [str(r.label) for r in test]

    def rows_of(rs: Sequence[Record]) -> list[dict[str, Any]]:
        return [classification_row(x, str(r.label), names, task, r.weight) for x, r in zip(inputs_of(rs, fields), rs)]

    def score(predicted: list[str]) -> dict[str, Any]:
        result = score_predictions(truth, predicted)
        result.update(bootstrap_intervals(truth, predicted, spec.bootstrap, seed=spec.seed))
        return result

    def predict(model_name: str | None) -> list[str]:
        model, tokenizer = load_model(model_name)
        return choose_labels(model, tokenizer, prompts, label_list)

    settings = _settings(spec)
    log("finetune: scoring the base model")
    base_pred = predict(spec.model)
    arms: dict[str, Any] = {"base": score(base_pred)}
    predictions: dict[str, list[str]] = {"base": base_pred}
    curve = []
    shuffled = _sample(train, len(train), spec.seed)  # one seeded order; each share is a prefix of it
    for share, size in _curve_sizes(len(train), spec.learning_curve):
        subset = shuffled[:size]
        folder = out / ("synthetic" if share == 1.0 else f"curve-{int(round(share * 100))}")
        log(f"finetune: {size} synthetic records ({share:.0%})")
        result = train_lm(rows_of(subset), folder, settings, progress=progress, data_name=f"{data}, synthetic records ({size})")
        predicted = predict(str(result.model_dir))
        scored = score(predicted)
        curve.append({"share": share, "records": size, "macro_f1": scored["macro_f1"], "macro_f1_ci": scored.get("macro_f1_ci"),
                      "accuracy": scored["accuracy"], "steps": result.steps, "loss": [result.first_loss, result.last_loss],
                      "seconds": round(result.seconds, 1)})
        if share == 1.0:
            arms["finetuned"] = scored | {"n_train": size, "steps": result.steps, "seconds": round(result.seconds, 1),
                                          "model_dir": str(result.model_dir), "loss": [result.first_loss, result.last_loss]}
            predictions["finetuned"] = predicted
    if real_train:
        real = _sample([r for r in real_train if r.label is not None], len(train), spec.seed)
        log(f"finetune: {len(real)} real records")
        result = train_lm(rows_of(real), out / "real", settings, progress=progress, data_name=f"{data}, real records ({len(real)})")
        predicted = predict(str(result.model_dir))
        arms["finetuned_real"] = score(predicted) | {"n_train": len(real), "model_dir": str(result.model_dir)}
        predictions["finetuned_real"] = predicted
    if spec.minilm:
        try:
            minilm, _ = fit_and_score(train, test, "embedding_logreg", fields, embedder, spec.seed, spec.bootstrap)
            arms["minilm_logreg"] = {k: minilm[k] for k in ("accuracy", "macro_f1", "accuracy_ci", "macro_f1_ci", "n_train") if k in minilm}
        except Exception as exc:  # the classifier beside is a comparison, not the stage
            arms["minilm_logreg"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    differences = {"finetuned_vs_base": paired_difference(truth, predictions["finetuned"], base_pred, spec.bootstrap, seed=spec.seed)}
    if "finetuned_real" in predictions:
        differences["finetuned_vs_finetuned_real"] = paired_difference(
            truth, predictions["finetuned"], predictions["finetuned_real"], spec.bootstrap, seed=spec.seed)
    return {
        "task": "classification", "method": settings.method, "lora": settings.lora, "model": spec.model or "smollm2 (embedded)",
        "n_test": len(test), "labels": label_list, "arms": arms, "differences": differences, "learning_curve": curve,
        "model_dir": arms["finetuned"]["model_dir"],
    }


def finetune_instructions(
    records: Sequence[Record], prompts: Sequence[str], spec: Any, out: Path, judge: Any, *, progress: bool = False,
    log: Callable[[str], None] = lambda _: None, data: str = "the records",
) -> dict[str, Any]:
    """Base vs fine-tuned answers to held-out prompts, judged pairwise in both orders (win rate of fine-tuned)."""
    from .pairwise import compare_answers

    if spec.method == "dpo":
        rows = [{"prompt": _messages(r.fields.get("prompt"), "user"), "chosen": _messages(r.fields.get("chosen"), "assistant"),
                 "rejected": _messages(r.fields.get("rejected"), "assistant"), "weight": r.weight} for r in records]
    else:
        rows = sft_rows(records)
    held = _sample(list(prompts), spec.n_test, spec.seed)
    if len(held) < 2:
        raise LMError(f"finetune: {len(held)} held-out prompt(s); too few to judge")
    asked = [[{"role": "user", "content": p}] for p in held]
    model, tokenizer = load_model(spec.model)
    log("finetune: base answers")
    base = generate_answers(model, tokenizer, asked, spec.max_new_tokens)
    settings = _settings(spec, spec.method)
    curve = []
    headline: dict[str, Any] = {}
    shuffled = _sample(rows, len(rows), spec.seed)
    for share, size in _curve_sizes(len(rows), spec.learning_curve):
        log(f"finetune: {size} records ({share:.0%})")
        result = train_lm(shuffled[:size], out / ("synthetic" if share == 1.0 else f"curve-{int(round(share * 100))}"),
                          settings, progress=progress, data_name=f"{data}, records ({size})")
        tuned_model, tuned_tok = load_model(str(result.model_dir))
        tuned = generate_answers(tuned_model, tuned_tok, asked, spec.max_new_tokens)
        judged = compare_answers(held, tuned, base, judge, resamples=spec.bootstrap, seed=spec.seed)
        curve.append({"share": share, "records": size, "win_rate": judged.get("win_rate"), "win_rate_ci": judged.get("win_rate_ci"),
                      "steps": result.steps, "loss": [result.first_loss, result.last_loss]})
        if share == 1.0:
            headline = judged | {"model_dir": str(result.model_dir), "steps": result.steps, "loss": [result.first_loss, result.last_loss],
                                 "examples": [{"prompt": p, "base": b, "finetuned": t} for p, b, t in list(zip(held, base, tuned))[:5]]}
    return {"task": "instructions", "method": spec.method, "lora": spec.lora, "model": spec.model or "smollm2 (embedded)",
            "n_test": len(held), "pairwise": headline, "learning_curve": curve, "model_dir": headline.get("model_dir")}


def _messages(value: Any, role: str) -> list[dict[str, Any]]:
    import json

    if isinstance(value, str) and value.startswith("["):
        value = json.loads(value)
    if isinstance(value, list):
        return value
    return [{"role": role, "content": "" if value is None else str(value)}]


def sft_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Prompt-completion rows for SFT: each record's conversation, the last turn the completion, its weight."""
    rows = []
    for r in records:
        convo = conversation(r)
        rows.append({"prompt": convo[:-1], "completion": convo[-1:], "weight": r.weight})
    return rows


def work_dir(run_dir: Path | None) -> Path:
    return (run_dir / "finetune") if run_dir is not None else Path(tempfile.mkdtemp(prefix="synthloom-finetune-"))


__all__ = ["finetune_classification", "finetune_instructions", "paired_difference", "work_dir"]
