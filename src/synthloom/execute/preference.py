"""Preference pairs (DPO data): several responses per prompt, scored, the best against the worst.

For each prompt (a record's instruction) the model writes `responses`
answers: different samples, or one per system prompt when
`system_prompts` are given. They are scored by one of

- `pairwise`: a judge compares every two responses in both orders
  (judges favour a position); a response's score is its share of wins
  (a tie or a split verdict counts a half); the orders that contradict each
  other (each picks the answer shown first, or each the second) are counted
  as disagreements;
- `rubric`: a judge rates each response from 1 to 10 against a rubric;
- `math_answer`: the execution verifier of curate/verifiers.py, against
  the record's reference answer (1 right, 0 wrong), in the sandbox;
- `reward`: a reward model behind an OpenAI-compatible endpoint
  (evaluate/reward.py): each response's expected 1-9 rating from the
  log-probabilities of the rating token.

The best and the worst response of a prompt make a pair with both scores
and the margin; a pair whose margin is below `min_margin` is dropped, a
prompt whose responses all score the same is a tie: both are counted, not
hidden. The judge is the responder's model unless another is given.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from ..curate import curate
from ..evaluate.judge import enum_schema, parse_verdict, verdict_request
from ..evaluate.reward import reward_request, reward_score
from ..evaluate.pairwise import OUTCOMES, SYSTEM as PAIRWISE_SYSTEM, order_scores, pairwise_prompt
from ..llm import Backend, BackendConfig, LlamaCppConfig, Request, Session
from ..recipe import MathAnswerSpec
from ..records import DataError, Record, write_records

Scorer = Literal["pairwise", "rubric", "math_answer", "reward"]
DEFAULT_RUBRIC = "helpful: answers what was asked; correct: no false statements; clear: easy to follow"
_RUBRIC_SYSTEM = "You grade answers to instructions against a rubric. Answer only with JSON."
_SCORES = {"score": [str(i) for i in range(1, 11)]}


@dataclass
class PairSettings:
    responses: int = 2
    system_prompts: Sequence[str] = ()
    prompt_field: str | None = None
    scorer: Scorer = "pairwise"
    rubric: str = DEFAULT_RUBRIC
    reference_field: str = "reference"
    min_margin: float = 0.5
    temperature: float = 0.9
    max_tokens: int = 128
    seed: int = 0


@dataclass
class PairResult:
    pairs: list[Record]
    counts: dict[str, int]
    verifier: dict[str, int] | None = None
    judgements: list[dict[str, Any]] = field(default_factory=list)


def _response_requests(prompts: Sequence[str], s: PairSettings) -> list[Request]:
    n = len(s.system_prompts) or s.responses
    out = []
    for i, prompt in enumerate(prompts):
        for j in range(n):
            system = ({"role": "system", "content": s.system_prompts[j]},) if s.system_prompts else ()
            out.append(Request(messages=(*system, {"role": "user", "content": prompt}), temperature=s.temperature,
                               max_tokens=s.max_tokens, seed=random.Random(f"{s.seed}:{i}:{j}").randrange(2**31), sample=j))
    return out


def _rubric_prompt(prompt: str, answer: str, rubric: str) -> str:
    return (f"Rubric: {rubric}\n\nInstruction:\n{prompt}\n\nAnswer:\n{answer}\n\n"
            'Rate the answer from 1 (poor) to 10 (excellent) by the rubric. Answer with a JSON object {"score": "N"}.')


def make_pairs(records: Sequence[Record], settings: PairSettings, model: BackendConfig | Backend | None = None,
               judge: BackendConfig | Backend | None = None, cache: str | Path | None = None) -> PairResult:
    """Responses, scores and pairs for every record's prompt (see the module's docstring); `judge` is
    the judge, or with the `reward` scorer the reward model (it must be given)."""
    s = settings
    if s.scorer == "reward" and judge is None:
        raise ValueError("the reward scorer needs a reward model (an OpenAI-compatible endpoint)")
    if s.responses < 2 and len(s.system_prompts) < 2:
        raise ValueError("preference pairs need at least two responses per prompt")
    if s.scorer == "math_answer":
        missing = next((r for r in records if r.fields.get(s.reference_field) in (None, "")), None)
        if missing is not None:
            raise DataError(f"record {missing.id}: no {s.reference_field!r} field for the math_answer scorer")
    model = model or LlamaCppConfig()
    prompts = [r.text(s.prompt_field) for r in records]
    asked = Session(model, cache).ask_all(_response_requests(prompts, s), None, "responses")
    n = len(s.system_prompts) or s.responses
    answers = [[o.completion.text.strip() if o.ok and o.completion else None for o in asked[i * n:(i + 1) * n]]
               for i in range(len(records))]
    counts = dict(prompts=len(records), responses=len(asked), failed_responses=sum(a is None for r in answers for a in r),
                  pairs=0, ties=0, below_margin=0, too_few_responses=0, judge_failures=0, disagreements=0)
    result = PairResult([], counts)
    scores = _score(records, prompts, answers, s, judge or model, cache, result)
    for record, prompt, texts, score in zip(records, prompts, answers, scores):
        usable = [(sc, t, j) for j, (t, sc) in enumerate(zip(texts, score)) if t and sc is not None]
        if len(usable) < 2:
            counts["too_few_responses"] += 1
            continue
        best = max(usable, key=lambda x: x[0])
        worst = min(usable, key=lambda x: x[0])
        margin = best[0] - worst[0]
        if margin == 0:
            counts["ties"] += 1
            continue
        if margin < s.min_margin:
            counts["below_margin"] += 1
            continue
        counts["pairs"] += 1
        result.pairs.append(Record(
            id=f"{record.id}-pair", label=record.label, conditions=dict(record.conditions),
            fields={"prompt": prompt, "chosen": best[1], "rejected": worst[1], "score_chosen": float(best[0]),
                    "score_rejected": float(worst[0]), "margin": float(margin)},
            meta={"source": record.id, "scorer": s.scorer, "scores": score, "chosen_response": best[2],
                  "rejected_response": worst[2]},
        ))
    return result


def _score(records: Sequence[Record], prompts: Sequence[str], answers: list[list[str | None]], s: PairSettings,
           judge: BackendConfig | Backend, cache: str | Path | None, result: PairResult) -> list[list[float | None]]:
    if s.scorer == "math_answer":
        checked = [Record(f"{r.id}-{j}", {"answer": t, "reference": str(r.fields[s.reference_field])})
                   for r, texts in zip(records, answers) for j, t in enumerate(texts) if t]
        verdicts = curate(checked, [MathAnswerSpec()]).funnel[0] if checked else None
        by_id = {c.id: c.scores.get("math_answer") for c in checked}
        if verdicts is not None:
            result.verifier = {"stage": "math_answer", "seen": verdicts.seen, "kept": verdicts.kept, "dropped": verdicts.dropped}
        return [[by_id.get(f"{r.id}-{j}") for j in range(len(texts))] for r, texts in zip(records, answers)]
    session = Session(judge, cache)
    if s.scorer == "reward":
        jobs = [(i, j) for i, texts in enumerate(answers) for j, t in enumerate(texts) if t]
        outcomes = session.ask_all([reward_request(prompts[i], answers[i][j], s.seed) for i, j in jobs],
                                   reward_score, "reward scores")
        rewards: list[list[float | None]] = [[None] * len(t) for t in answers]
        for (i, j), o in zip(jobs, outcomes):
            if o.ok:
                rewards[i][j] = float(o.value)  # type: ignore[arg-type]
            else:
                result.counts["judge_failures"] += 1
        return rewards
    if s.scorer == "rubric":
        schema = enum_schema(_SCORES)
        jobs = [(i, j) for i, texts in enumerate(answers) for j, t in enumerate(texts) if t]
        requests = [verdict_request(_RUBRIC_SYSTEM, _rubric_prompt(prompts[i], answers[i][j], s.rubric), schema, 16, s.seed)
                    for i, j in jobs]
        outcomes = session.ask_all(requests, lambda c: int(parse_verdict(c.text, _SCORES)["score"]), "rubric scores")
        out: list[list[float | None]] = [[None] * len(t) for t in answers]
        for (i, j), o in zip(jobs, outcomes):
            if o.ok:
                out[i][j] = float(o.value)  # type: ignore[arg-type]
            else:
                result.counts["judge_failures"] += 1
        return out
    schema = enum_schema(OUTCOMES)
    pairs = [(i, a, b) for i, texts in enumerate(answers)
             for a, b in itertools.combinations([j for j, t in enumerate(texts) if t], 2)]
    requests = []
    for i, a, b in pairs:
        requests.append(verdict_request(PAIRWISE_SYSTEM, pairwise_prompt(prompts[i], answers[i][a], answers[i][b]), schema, 16, s.seed))  # type: ignore[arg-type]
        requests.append(verdict_request(PAIRWISE_SYSTEM, pairwise_prompt(prompts[i], answers[i][b], answers[i][a]), schema, 16, s.seed))  # type: ignore[arg-type]
    outcomes = session.ask_all(requests, lambda c: parse_verdict(c.text, OUTCOMES)["winner"], "pairwise judging")
    wins: list[list[list[float]]] = [[[] for _ in t] for t in answers]
    for k, (i, a, b) in enumerate(pairs):
        ab, ba = outcomes[2 * k], outcomes[2 * k + 1]
        v_ab, v_ba = (ab.value if ab.ok else None), (ba.value if ba.ok else None)
        result.counts["judge_failures"] += (v_ab is None) + (v_ba is None)
        if v_ab is not None and v_ba is not None and v_ab == v_ba != "tie":
            result.counts["disagreements"] += 1  # the same position won in both orders: no preference
        score = order_scores(v_ab, v_ba)  # a's share of the two verdicts; a split counts a half each
        result.judgements.append({"prompt": i, "a": a, "b": b, "a_first": v_ab, "b_first": v_ba, "score_a": score})
        if score is not None:
            wins[i][a].append(score)
            wins[i][b].append(1 - score)
    return [[sum(w) / len(w) if w else None for w in row] for row in wins]


def write_pairs(result: PairResult, out: str | Path, settings: PairSettings, source: str) -> Path:
    """`pairs.parquet` (prompt, chosen, rejected, both scores, margin) and `manifest.json` in `out`;
    `synthloom export OUT --format preference` then writes it in TRL's form."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_records(out / "curated.parquet", result.pairs, prompts=False)
    manifest = {
        "source": source,
        "recipe": {"name": Path(source).stem + "-pairs", "task": {"kind": "preference", "description": "preference pairs"}},
        "preference": {"scorer": settings.scorer, "min_margin": settings.min_margin, "counts": result.counts},
        "curation": {"funnel": [result.verifier] if result.verifier else []},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out / "curated.parquet"


__all__ = ["DEFAULT_RUBRIC", "PairResult", "PairSettings", "make_pairs", "write_pairs"]
