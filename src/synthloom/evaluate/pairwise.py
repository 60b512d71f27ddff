"""Open evaluation: a judge compares two sets of answers to the same prompts.

Where answers have no single right form (instructions, dialogue), the
survey's open evaluation asks a judge which of two answers is better. Each
pair is judged in both orders (A first, then B first), because judges
favour a position; a prompt scores 1 when A wins both, 0 when B wins both,
and 0.5 for a tie or a split verdict. Reported: the win rate of A with a
bootstrap interval, the shares of wins, ties and losses, how often the two
orders agreed, and a length-controlled win rate.

Judges also favour longer answers. The length-controlled win rate (after
AlpacaEval 2.0) fits a logistic regression of the outcome on the
normalised length difference, tanh((len_A - len_B) / sd), and reports the
win rate it predicts for answers of equal length: sigmoid(intercept).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .judge import Judge, enum_schema, parse_verdict, verdict_request

SYSTEM = (
    "You compare two answers to the same instruction and decide which one is better: more helpful, "
    "more correct and clearer. Length alone is not a reason to prefer an answer. Answer only with JSON."
)
OUTCOMES = {"winner": ["1", "2", "tie"]}


def pairwise_prompt(prompt: str, first: str, second: str) -> str:
    return (
        f"Instruction:\n{prompt}\n\nAnswer 1:\n{first}\n\nAnswer 2:\n{second}\n\n"
        'Which answer is better? Answer with a JSON object {"winner": "1"}, {"winner": "2"} or {"winner": "tie"}.'
    )


def order_scores(verdict_ab: str | None, verdict_ba: str | None) -> float | None:
    """A's score from the two orders' verdicts ("1", "2", "tie"); None when neither order has one."""
    scores = []
    if verdict_ab is not None:
        scores.append({"1": 1.0, "2": 0.0, "tie": 0.5}[verdict_ab])
    if verdict_ba is not None:
        scores.append({"1": 0.0, "2": 1.0, "tie": 0.5}[verdict_ba])
    return float(np.mean(scores)) if scores else None


def length_controlled_win_rate(scores: Sequence[float], length_a: Sequence[int], length_b: Sequence[int]) -> float:
    """The win rate predicted at zero length difference by a logistic fit of score on tanh(length difference)."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(scores, dtype=float)
    diff = np.asarray(length_a, dtype=float) - np.asarray(length_b, dtype=float)
    sd = diff.std()
    x = np.tanh(diff / sd) if sd > 0 else np.zeros_like(diff)
    if np.all(s == s[0]) or sd == 0:
        return float(s.mean())
    # each prompt is a win with weight s and a loss with weight 1 - s
    features = np.r_[x, x].reshape(-1, 1)
    targets = np.r_[np.ones(len(s)), np.zeros(len(s))]
    weights = np.r_[s, 1 - s]
    keep = weights > 0
    model = LogisticRegression(C=1e6, max_iter=1000)
    model.fit(features[keep], targets[keep], sample_weight=weights[keep])
    return float(1 / (1 + np.exp(-model.intercept_[0])))


def compare_answers(
    prompts: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    judge: Judge,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    max_tokens: int = 16,
) -> dict[str, Any]:
    """Judge A against B on each prompt in both orders; win rates of A with intervals."""
    if not (len(prompts) == len(answers_a) == len(answers_b)):
        raise ValueError("prompts and both answer sets must have the same length")
    schema = enum_schema(OUTCOMES)
    requests = []
    for prompt, a, b in zip(prompts, answers_a, answers_b):
        requests.append(verdict_request(SYSTEM, pairwise_prompt(prompt, a, b), schema, max_tokens, seed))
        requests.append(verdict_request(SYSTEM, pairwise_prompt(prompt, b, a), schema, max_tokens, seed))
    outcomes = judge.ask(requests, lambda c: parse_verdict(c.text, OUTCOMES)["winner"], "judging pairs")
    rows = []
    for i in range(len(prompts)):
        ab, ba = outcomes[2 * i], outcomes[2 * i + 1]
        v_ab = ab.value if ab.ok else None
        v_ba = ba.value if ba.ok else None
        score = order_scores(v_ab, v_ba)
        if score is not None:
            rows.append({"index": i, "a_first": v_ab, "b_first": v_ba, "score": score,
                         "len_a": len(answers_a[i]), "len_b": len(answers_b[i])})
    return summarise(rows, resamples, level, seed) | {
        "judge": {"backend": judge.config.backend, "model_calls": judge.stats.get("model_calls", 0),
                  "served_from_cache": judge.stats.get("served_from_cache", 0)},
        "prompts": len(prompts),
        "judgements": rows,
    }


def summarise(rows: Sequence[dict[str, Any]], resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Win rate, shares, position consistency and length-controlled win rate of judged rows."""
    if not rows:
        return {"judged": 0, "win_rate": None}
    s = np.array([r["score"] for r in rows])
    la = np.array([r["len_a"] for r in rows])
    lb = np.array([r["len_b"] for r in rows])
    both = [r for r in rows if r["a_first"] is not None and r["b_first"] is not None]
    consistent = [r for r in both if order_scores(r["a_first"], None) == order_scores(None, r["b_first"])]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(s), (resamples, len(s)))
    tail = (1 - level) / 2 * 100
    win_boot = s[idx].mean(axis=1)
    lc_boot = [length_controlled_win_rate(s[i], la[i], lb[i]) for i in idx[: min(resamples, 200)]]
    return {
        "judged": len(rows),
        "win_rate": float(s.mean()),
        "win_rate_ci": np.percentile(win_boot, [tail, 100 - tail]).round(4).tolist(),
        "wins": float((s == 1).mean()),
        "ties": float((s == 0.5).mean()),
        "losses": float((s == 0).mean()),
        "position_consistency": len(consistent) / len(both) if both else None,
        "length_controlled_win_rate": length_controlled_win_rate(s, la, lb),
        "length_controlled_win_rate_ci": np.percentile(lc_boot, [tail, 100 - tail]).round(4).tolist(),
    }


__all__ = ["compare_answers", "length_controlled_win_rate", "order_scores", "pairwise_prompt", "summarise"]
