"""Indirect evaluation on QA and generative benchmarks: the records as worked examples.

Classification benchmarks are evaluated by training a small classifier on
the synthetic data and testing it on real data (`downstream`). A language
model cannot be fine-tuned on a laptop CPU, so for QA and generative
benchmarks (AdversarialQA, TruthfulQA, MATH, ToolBench, NIV2, BIG-bench)
the indirect measure is in-context instead: a model answers the
benchmark's real test questions with `shots` synthetic records shown as
worked examples (input -> answer turns), and again with no examples
(zero-shot, the baseline). Its answers are scored against the references
by exact match and token F1 (`score_generative`, MATH on its \\boxed{}
answer), or by a judge, with Wilson intervals; the difference between the
two settings says whether the synthetic data helps.

Every request goes through the scheduler and the run's completion cache
(`Judge.ask`), at temperature 0 with a seed per test item, so a rerun pays
for nothing it already asked.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..llm import Backend, BackendConfig, Completion, LlamaCppConfig, Request
from ..records import DataError, Record
from .benchmarks import BENCHMARKS, score_generative
from .faithfulness import sample_records, share, wilson_interval
from .judge import Judge, enum_schema, parse_verdict, verdict_request

Scoring = Literal["exact_match", "judge", "both"]
SETTINGS = ("synthetic_shots", "zero_shot")

# What the model is asked to do, per benchmark; the default suits short answers.
INSTRUCTIONS: dict[str, str] = {
    "adversarial_qa": "Answer the question with the shortest span of the context that answers it. Reply with the answer only.",
    "math": "Solve the problem. Show brief working and put the final answer in \\boxed{}.",
    "toolbench": "Write a short plan of API calls (from the list given) that answers the query.",
}
DEFAULT_INSTRUCTION = "Answer the input. Reply with the answer only, briefly and without explanation."
LONG_ANSWERS = {"math": 256, "toolbench": 256}
DEFAULT_MAX_TOKENS = 64

JUDGE_SYSTEM = "You are a strict grader of answers to test questions. Answer only with JSON."
JUDGE_KEYS = {"correct": ["yes", "no"]}


def format_input(fields: dict[str, Any], names: Sequence[str]) -> str:
    """The input fields as `Name: value` lines (the same for examples and test items)."""
    return "\n".join(f"{name.replace('_', ' ').capitalize()}: {_text(fields.get(name))}" for name in names)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _answer(record: Record, answer_field: str) -> Any:
    if answer_field in record.fields:
        return record.fields[answer_field]
    return record.label if answer_field == "label" else None


def check_fields(records: Sequence[Record], input_fields: Sequence[str], answer_field: str) -> None:
    """A one-line DataError for the first synthetic record without an input or answer field."""
    for record in records:
        missing = [f for f in input_fields if f not in record.fields]
        if _answer(record, answer_field) is None:
            missing.append(answer_field)
        if missing:
            raise DataError(
                f"synthetic record {record.id} has no field {missing[0]!r} to use as a worked example "
                f"(its fields: {', '.join(record.fields) or 'none'}); set input_fields / answer_field"
            )


def build_messages(
    item: Record, examples: Sequence[Record], input_fields: Sequence[str], answer_field: str, instruction: str
) -> tuple[dict[str, str], ...]:
    """System instruction, each example as a (user input, assistant answer) turn, then the test item."""
    messages = [{"role": "system", "content": instruction}]
    for example in examples:
        messages.append({"role": "user", "content": format_input(example.fields, input_fields)})
        messages.append({"role": "assistant", "content": _text(_answer(example, answer_field))})
    messages.append({"role": "user", "content": format_input(item.fields, input_fields)})
    return tuple(messages)


def choose_examples(
    records: Sequence[Record],
    items: Sequence[Record],
    shots: int,
    input_fields: Sequence[str],
    seed: int,
    selection: Literal["random", "nearest"] = "random",
    encode: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> list[list[Record]]:
    """The worked examples of each test item: `shots` at random (a seeded generator per item),
    or the `shots` records nearest the item's input in embedding space."""
    k = min(shots, len(records))
    if selection == "nearest":
        if encode is None:
            raise ValueError("selection `nearest` needs an encoder")
        pool = encode([format_input(r.fields, input_fields) for r in records])  # unit vectors
        queries = encode([format_input(item.fields, input_fields) for item in items])
        order = np.argsort(-(queries @ pool.T), axis=1, kind="stable")[:, :k]
        return [[records[int(j)] for j in row] for row in order]
    return [[records[j] for j in random.Random(_item_seed(seed, i)).sample(range(len(records)), k)] for i in range(len(items))]


def _item_seed(seed: int, i: int) -> int:
    """Test item `i`'s own seed: its examples, its answer request and its verdict request."""
    return seed * 1_000_003 + i


def judge_prompt(item: Record, input_fields: Sequence[str], answer: str) -> str:
    """The judge's question: is this answer correct given the reference answers (or, with none, the input)?"""
    references = item.meta.get("references") or []
    lines = ["The test item:", format_input(item.fields, input_fields), ""]
    if references:
        lines.append("Reference answers (any of them is correct):")
        lines += [f"- {r}" for r in references[:8]]
        lines += ["", "The answer to grade:", answer or "(empty)", ""]
        lines.append("Is the answer correct, i.e. does it say the same as one of the reference answers?")
    else:
        lines += ["The answer to grade:", answer or "(empty)", ""]
        lines.append("Does the answer correctly and fully address the test item?")
    lines.append('Answer with a JSON object {"correct": "yes"} or {"correct": "no"}.')
    return "\n".join(lines)


def answer_benchmark(
    records: Sequence[Record],
    test: Sequence[Record],
    *,
    benchmark: str | None = None,
    model: BackendConfig | None = None,
    backend: Backend | None = None,
    judge: Judge | None = None,
    shots: int = 3,
    selection: Literal["random", "nearest"] = "random",
    encode: Callable[[Sequence[str]], np.ndarray] | None = None,
    input_fields: Sequence[str] | None = None,
    answer_field: str = "answer",
    scoring: Scoring | None = None,
    zero_shot: bool = True,
    instruction: str | None = None,
    n: int = 50,
    seed: int = 0,
    boxed: bool | None = None,
    max_tokens: int | None = None,
    judge_max_tokens: int = 24,
    cache_path: str | Path | None = None,
    progress: bool = False,
    examples: int = 10,
) -> dict[str, Any]:
    """Answer `n` sampled test items with synthetic worked examples and zero-shot; score both.

    `benchmark` (a registry name) supplies the defaults of `input_fields`
    (its input names), `scoring` (its metric: exact match, or a judge),
    `boxed` (MATH) and the instruction. Test records carry their reference
    answers in `meta["references"]` (what `load_benchmark` gives). The
    answering model is `backend` when given, else one made from `model`
    (default: the embedded model); `judge` grades answers when scoring
    asks for it (default: the answering model).
    """
    entry = BENCHMARKS.get(benchmark) if benchmark else None
    input_fields = list(input_fields or (entry.fields if entry else []))
    if not input_fields:
        raise ValueError("give input_fields (or a benchmark that names them)")
    scoring = scoring or ("judge" if entry is not None and entry.metric == "judge" else "exact_match")
    boxed = (benchmark == "math") if boxed is None else boxed
    instruction = instruction or INSTRUCTIONS.get(benchmark or "", DEFAULT_INSTRUCTION)
    max_tokens = max_tokens or LONG_ANSWERS.get(benchmark or "", DEFAULT_MAX_TOKENS)
    settings = [s for s in SETTINGS if s == "synthetic_shots" or zero_shot]
    if shots < 1:
        raise ValueError("shots: use at least 1 (zero-shot is always the baseline)")
    if not records:
        raise DataError("no synthetic records to use as worked examples")
    check_fields(records, input_fields, answer_field)
    items = sample_records(test, n, seed)
    if not items:
        raise DataError(f"benchmark {benchmark or '(unnamed)'}: no test items")
    missing = [f for f in input_fields if f not in items[0].fields]
    if missing:
        raise DataError(f"test items have no field {missing[0]!r} (their fields: {', '.join(items[0].fields)})")
    with_references = sum(bool(item.meta.get("references")) for item in items)
    if scoring in ("exact_match", "both") and not with_references:
        raise DataError(f"benchmark {benchmark or '(unnamed)'}: the test items have no reference answers; use scoring: judge")

    chosen = choose_examples(records, items, shots, input_fields, seed, selection, encode)
    stop = ("\n",) if entry is not None and entry.kind == "qa" else None
    requests = [
        Request(
            messages=build_messages(item, chosen[i] if setting == "synthetic_shots" else [], input_fields, answer_field, instruction),
            temperature=0.0, max_tokens=max_tokens, seed=_item_seed(seed, i), stop=stop,
        )
        for setting in settings for i, item in enumerate(items)
    ]
    config = model or getattr(backend, "config", None) or LlamaCppConfig()
    answerer = Judge(config, cache_path, backend=backend, progress=progress)
    outcomes = answerer.ask(requests, _answer_text, f"answering {benchmark or 'the benchmark'}")
    answers = {
        setting: [o.value if o.ok else None for o in outcomes[k * len(items):(k + 1) * len(items)]]
        for k, setting in enumerate(settings)
    }

    verdicts: dict[str, list[bool | None]] = {}
    grader = None
    if scoring in ("judge", "both"):
        grader = judge or answerer
        pairs = [(s, i) for s in settings for i in range(len(items)) if answers[s][i] is not None]
        judged = grader.ask(
            [verdict_request(JUDGE_SYSTEM, judge_prompt(items[i], input_fields, answers[s][i] or ""),
                             enum_schema(JUDGE_KEYS), judge_max_tokens, _item_seed(seed, i)) for s, i in pairs],
            lambda completion: parse_verdict(completion.text, JUDGE_KEYS), "judging answers",
        )
        verdicts = {s: [None] * len(items) for s in settings}
        for (s, i), outcome in zip(pairs, judged):
            verdicts[s][i] = outcome.value["correct"] == "yes" if outcome.ok else None

    out: dict[str, Any] = {
        "benchmark": benchmark,
        "shots": shots,
        "selection": selection,
        "scoring": scoring,
        "sampled": len(items),
        "population": len(test),
        "settings": {
            s: _score(items, answers[s], verdicts.get(s), scoring, boxed) for s in settings
        },
    }
    if "zero_shot" in out["settings"]:
        a, b = out["settings"]["synthetic_shots"], out["settings"]["zero_shot"]
        for key in ("exact_match", "token_f1"):
            if a.get(key) is not None and b.get(key) is not None:
                out[f"{key}_gain"] = round(a[key] - b[key], 4)
        if "judge_correct" in a and a["judge_correct"]["share"] is not None and b["judge_correct"]["share"] is not None:
            out["judge_correct_gain"] = round(a["judge_correct"]["share"] - b["judge_correct"]["share"], 4)
    out["model"] = _calls(answerer)
    if grader is not None:
        out["judge"] = _calls(grader)
    out["examples"] = [
        {
            "id": item.id,
            "input": {f: _text(item.fields.get(f))[:600] for f in input_fields},
            "references": list(item.meta.get("references") or [])[:5],
            "answers": {s: answers[s][i] for s in settings},
            **({"judge_correct": {s: verdicts[s][i] for s in settings}} if verdicts else {}),
        }
        for i, item in enumerate(items[:examples])
    ]
    return out


def _answer_text(completion: Completion) -> str:
    return completion.text.strip()


def _score(
    items: Sequence[Record], answers: Sequence[str | None], verdicts: Sequence[bool | None] | None, scoring: str, boxed: bool
) -> dict[str, Any]:
    """Exact match (with a Wilson interval) and token F1 over the answered items with references;
    the judge's share of correct answers over the judged ones."""
    done = [i for i, a in enumerate(answers) if a is not None]
    out: dict[str, Any] = {"n": len(done), "failed": len(answers) - len(done)}
    if scoring in ("exact_match", "both"):
        scored = [i for i in done if items[i].meta.get("references")]
        per_item = [score_generative([answers[i] or ""], [items[i].meta["references"]], boxed=boxed) for i in scored]
        hits = sum(int(s["exact_match"]) for s in per_item)
        low, high = wilson_interval(hits, len(scored))
        out.update(
            exact_match=hits / len(scored) if scored else None,
            exact_match_ci=[round(low, 4), round(high, 4)],
            token_f1=round(sum(s["token_f1"] for s in per_item) / len(scored), 4) if scored else None,
            n_scored=len(scored),
        )
    if verdicts is not None:
        seen = [v for v in verdicts if v is not None]
        out["judge_correct"] = share(sum(seen), len(seen))
    return out


def _calls(judge: Judge) -> dict[str, Any]:
    stats = judge.stats
    failures = stats.get("failed_requests_by_kind") or {}
    return {
        "backend": judge.config.backend,
        **({"model": judge.config.model} if getattr(judge.config, "model", None) else {}),
        "model_calls": stats.get("model_calls", 0),
        "served_from_cache": stats.get("served_from_cache", 0),
        **({"failed_by_kind": dict(failures)} if failures else {}),
    }


__all__ = ["SETTINGS", "answer_benchmark", "build_messages", "check_fields", "choose_examples", "format_input", "judge_prompt"]
