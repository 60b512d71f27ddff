"""Judge calibration: does the faithfulness estimate find label errors we planted?

Real labelled SMS messages (the registry's test split of SMS spam), a
seeded sample of n, with exactly 20% of the labels flipped: the true share
of correctly labelled records is 80%. The embedded SmolLM2-135M judges the
sample with the faithfulness rubric; reported are its estimate of the
faithful share (all criteria) and of the correctly labelled share, each
with a Wilson 95% interval, against the truth, and how well its
label verdicts find the flipped records (sensitivity, specificity,
Cohen's kappa against the truth). Answers are cached in
benchmarks/results/judge_calibration, so a rerun costs nothing.

    SYNTHLOOM_DATA=/path/to/shared/data python benchmarks/judge_calibration.py [--n 40]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from synthloom.evaluate import Judge, judge_faithfulness, load_benchmark
from synthloom.evaluate.faithfulness import judge_agreement, sample_records
from synthloom.llm import LlamaCppConfig

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "judge_calibration"
DATA = Path(os.environ.get("SYNTHLOOM_DATA") or ROOT.parent / "shared" / "data")
LABELS = {
    "spam": "unsolicited advertising, prizes, premium-rate numbers, offers to reply to",
    "ham": "an ordinary personal message between people who know each other",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SYNTHLOOM_THREADS", "1")))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    records = sample_records(load_benchmark("sms_spam", "test", DATA / "sms_spam"), args.n, seed=0)
    flipped = set(random.Random(1).sample(range(len(records)), round(0.2 * len(records))))
    for i in flipped:
        records[i].label = "ham" if records[i].label == "spam" else "spam"
    truth = [(r.id, "label_correct", "no" if i in flipped else "yes") for i, r in enumerate(records)]
    judge = Judge(LlamaCppConfig(n_threads=args.threads), OUT / "cache.sqlite", progress=True)
    t0 = time.time()
    out = judge_faithfulness(records, judge, task="short SMS text messages people in the UK get", labels=LABELS, sample=len(records))
    elapsed = time.time() - t0
    verdicts = {v["id"]: v for v in out["verdicts"]}
    caught = sum(1 for i, r in enumerate(records) if i in flipped and r.id in verdicts and not verdicts[r.id]["label_correct"])
    passed = sum(1 for i, r in enumerate(records) if i not in flipped and r.id in verdicts and verdicts[r.id]["label_correct"])
    judged_flipped = sum(1 for i, r in enumerate(records) if i in flipped and r.id in verdicts)
    agreement = judge_agreement(out["verdicts"], truth, ["label_correct"])["label_correct"]
    result = {
        "n": len(records), "judged": out["judged"], "failed": out["failed"], "true_share": 1 - len(flipped) / len(records),
        "faithful": out["faithful"], "label_correct": out["criteria"].get("label_correct"), "criteria": out["criteria"],
        "sensitivity": caught / judged_flipped if judged_flipped else None,
        "specificity": passed / (out["judged"] - judged_flipped) if out["judged"] > judged_flipped else None,
        "kappa": agreement["kappa"], "seconds": round(elapsed, 1), "model_calls": out["judge"]["model_calls"],
        "served_from_cache": out["judge"]["served_from_cache"],
    }
    (OUT / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    f, lc = result["faithful"], result["label_correct"]
    print(f"\njudge calibration: SMS spam, {result['n']} real messages, 20% of labels flipped "
          f"(true share correctly labelled {result['true_share']:.0%}); judge: embedded SmolLM2-135M; "
          f"{result['judged']} judged, {result['failed']} unusable answers; {result['model_calls']} model calls "
          f"({result['served_from_cache']} from cache), {result['seconds']} s")
    print("| estimate | share | Wilson 95% interval | truth |")
    print("|---|---|---|---|")
    print(f"| faithful (all four criteria) | {f['share']:.1%} | [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] | at most 80% |")
    print(f"| label correct | {lc['share']:.1%} | [{lc['interval'][0]:.1%}, {lc['interval'][1]:.1%}] | 80% |")
    for name in ("fluent", "on_task", "factual"):
        c = result["criteria"][name]
        print(f"| {name.replace('_', ' ')} | {c['share']:.1%} | [{c['interval'][0]:.1%}, {c['interval'][1]:.1%}] | real messages (high) |")
    sens = "n/a" if result["sensitivity"] is None else f"{result['sensitivity']:.2f}"
    spec = "n/a" if result["specificity"] is None else f"{result['specificity']:.2f}"
    print(f"flipped labels found (sensitivity) {sens}, correct labels passed (specificity) {spec}, "
          f"Cohen's kappa with the truth {result['kappa']:.2f}")


if __name__ == "__main__":
    main()
