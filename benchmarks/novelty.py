"""Novelty filter (Self-Instruct's ROUGE-L rule) on 5,000 real instructions, against rouge-score.

The instructions are the first 5,000 customer requests of banking77's
train.csv after a shuffle with seed 0 (short requests with many near
rephrasings, like a bootstrapped instruction pool); the first 175 are the
seed pool, as in Self-Instruct. Both arms apply the rule in order: a
request is kept when its ROUGE-L F-measure with every pool text and every
earlier kept request is at most 0.7.

- reference: the loop Self-Instruct and Alpaca use: each text tokenized once
  with rouge-score's tokenizer, then `rouge_scorer._score_lcs` against every
  text in the pool (the fastest faithful use of rouge-score);
- synthloom: `synthloom.curate.novelty.rouge_l_novelty`.

Arms alternate (reference, ours, ours, ...); ours is timed `--rounds` times and
the median taken. Decisions and scores must be identical.

    python benchmarks/novelty.py [--n 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from synthloom.curate.novelty import rouge_l_novelty
from synthloom.records import read_rows

DATA = Path(os.environ.get("SYNTHLOOM_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")


def instructions(n: int) -> list[str]:
    texts = [row["text"] for row in read_rows(DATA / "banking77" / "train.csv")]
    random.Random(0).shuffle(texts)
    return texts[:n]


def reference(candidates: list[str], pool: list[str], threshold: float) -> tuple[list[bool], list[float]]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept = [scorer._tokenizer.tokenize(t) for t in pool]
    keep, best = [], []
    for text in candidates:
        tokens = scorer._tokenizer.tokenize(text)
        top = max((rouge_scorer._score_lcs(tokens, other).fmeasure for other in kept), default=0.0)
        keep.append(top <= threshold)
        best.append(top)
        if top <= threshold:
            kept.append(tokens)
    return keep, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--pool", type=int, default=175)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = instructions(args.n)
    pool, candidates = texts[: args.pool], texts[args.pool :]

    t0 = time.perf_counter()
    ref_keep, ref_best = reference(candidates, pool, args.threshold)
    ref_s = time.perf_counter() - t0
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        result = rouge_l_novelty(candidates, pool, args.threshold)
        times.append(time.perf_counter() - t0)
    ours_s = statistics.median(times)

    same_decisions = result.keep.tolist() == ref_keep
    same_scores = result.score.tolist() == ref_best
    print(f"{len(texts)} banking77 requests ({len(pool)} seed pool + {len(candidates)} candidates), "
          f"ROUGE-L threshold {args.threshold}; kept {sum(ref_keep)} of {len(candidates)}")
    print()
    print("| arm | seconds | texts/s | speed-up | identical decisions | identical scores |")
    print("|---|---|---|---|---|---|")
    print(f"| rouge-score reference loop | {ref_s:.2f} | {len(candidates) / ref_s:.0f} | 1.0x | - | - |")
    print(f"| synthloom rouge_l_novelty | {ours_s:.3f} | {len(candidates) / ours_s:.0f} | "
          f"{ref_s / ours_s:.0f}x | {'yes' if same_decisions else 'NO'} | {'yes' if same_scores else 'NO'} |")
    if not (same_decisions and same_scores):
        sys.exit(1)


if __name__ == "__main__":
    main()
