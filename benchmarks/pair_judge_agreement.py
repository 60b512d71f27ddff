"""Preference pairs: does the judge prefer the response the execution verifier says is right?

Seeded arithmetic questions with known answers; the embedded SmolLM2-135M writes two responses
per question (different samples); two scorers run on the same responses (one cache):
`math_answer` (the verifier: sympy in the sandbox, against the reference: ground truth) and
`pairwise` (the judge, both orders) and `rubric` (the judge rates each response 1-10). On the questions where the verifier separates the two
responses (one right, one wrong), the judge's preference is compared with the verifier's:
agreement with a Wilson 95% interval, and Cohen's kappa over which response is better (the
judge's ties and split verdicts counted apart, as no preference).

"Met" rule, written before the run: the judge agrees with the verifier better than chance,
i.e. the Wilson lower bound of agreement on decisive pairs is above 0.5 and kappa above 0.2.

    nice -n 10 python benchmarks/pair_judge_agreement.py [--n 40]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "pair_judge_agreement"


def questions(n: int, seed: int = 0):
    from synthloom.records import Record

    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 30), rng.randint(2, 12)
        op = rng.choice(["+", "-", "*"])
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        out.append(Record(f"q{i}", {"question": f"What is {a} {op} {b}? End with: The answer is N.", "reference": str(answer)}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SYNTHLOOM_THREADS", "1")))
    args = parser.parse_args()
    from sklearn.metrics import cohen_kappa_score

    from synthloom.evaluate import wilson_interval
    from synthloom.execute.preference import PairSettings, make_pairs
    from synthloom.llm import LlamaCppConfig

    OUT.mkdir(parents=True, exist_ok=True)
    records = questions(args.n)
    model = LlamaCppConfig(n_threads=args.threads)
    cache = OUT / "cache.sqlite"
    common = dict(responses=2, prompt_field="question", max_tokens=48, temperature=0.9, min_margin=0.0)
    t0 = time.time()
    verified = make_pairs(records, PairSettings(scorer="math_answer", **common), model=model, cache=cache)
    t1 = time.time()
    judged = make_pairs(records, PairSettings(scorer="pairwise", **common), model=model, cache=cache)
    t2 = time.time()
    truth = {}  # question index -> the response the verifier says is right (0 or 1), where it separates them
    by_id = {r.id: i for i, r in enumerate(records)}
    for pair in verified.pairs:
        scores = pair.meta["scores"]
        if len(scores) == 2 and None not in scores and scores[0] != scores[1]:
            truth[by_id[pair.meta["source"]]] = 0 if scores[0] > scores[1] else 1
    rubric = make_pairs(records, PairSettings(scorer="rubric", **common), model=model, cache=cache)
    t3 = time.time()
    pairwise = {}
    for j in judged.judgements:
        if j["a"] == 0 and j["b"] == 1 and j["score_a"] is not None:
            pairwise[j["prompt"]] = None if j["score_a"] == 0.5 else (0 if j["score_a"] > 0.5 else 1)
    rated = {i: None for i in range(len(records))}  # a prompt without a pair: a tie or an unusable rating
    for pair in rubric.pairs:
        rated[by_id[pair.meta["source"]]] = pair.meta["chosen_response"]
    right = verified.verifier or {}
    print(f"{len(records)} questions, {verified.counts['responses']} responses; verifier: {right.get('kept')} of "
          f"{right.get('seen')} responses right; it separates the two responses of {len(truth)} questions")
    print("\n| judge | questions compared | decisive | tie/split | agrees | agreement | Wilson 95% | Cohen's kappa | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    met = False
    for name, judge, seconds in (("pairwise", pairwise, t2 - t1), ("rubric", rated, t3 - t2)):
        compared = [i for i in truth if i in judge]
        decisive = [i for i in compared if judge[i] is not None]
        agree = sum(judge[i] == truth[i] for i in decisive)
        low, high = wilson_interval(agree, len(decisive)) if decisive else (0.0, 0.0)
        t, p = [truth[i] for i in decisive], [judge[i] for i in decisive]
        kappa = cohen_kappa_score(t, p) if decisive and len(set(t) | set(p)) > 1 else float("nan")
        print(f"| {name} | {len(compared)} | {len(decisive)} | {len(compared) - len(decisive)} | {agree} | "
              f"{agree / len(decisive) if decisive else 0:.2f} | [{low:.2f}, {high:.2f}] | {kappa:.2f} | {seconds:.0f} |")
        met = met or (bool(decisive) and low > 0.5 and kappa > 0.2)
    print(f"\npairwise judge: the same position won both orders in {judged.counts['disagreements']} of "
          f"{len(judged.judgements)} comparisons; responses and verifier took {t1 - t0:.0f} s")
    print(f"met: a judge agrees with the verifier better than chance (lower bound > 0.5, kappa > 0.2): {'yes' if met else 'no'}")


if __name__ == "__main__":
    main()
