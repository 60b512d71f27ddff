"""Does fine-tuning SmolLM2-135M on synthetic SMS records make it a better spam classifier?

Arms, on the same held-out real SMS test rows (the fixed 20% test split of
/work/shared/data/sms_spam, a seeded sample of it touched only by the final
scores), each model choosing a label by constrained greedy decoding:

- `base`: SmolLM2-135M-Instruct zero-shot (deterministic: scored once);
- `ft_synthetic`: the same model, LoRA SFT on the synthetic records;
- `ft_real`: the same model, LoRA SFT on `--real-per-class` real training
  messages per class (drawn by the seed from the train split);
- `minilm_synthetic`: MiniLM + logistic regression on the synthetic records
  (the classifier the downstream stage uses), beside them.

Seeds vary the draw of real examples, the order of training data and the
LoRA initialisation; the two fine-tuned arms alternate which trains first.
Per-seed macro-F1 goes to benchmarks/results/seeds/finetune_sms.json;
the table gives means with t-intervals and paired differences to `base`.

MET (written before the run): `ft_synthetic` beats `base` by at least 0.20
macro-F1 on the mean paired difference, and the paired difference's 95%
t-interval over seeds is above 0.

The synthetic records: `--synthetic` (a run directory or curated.parquet),
e.g. from `synthloom run examples/sms_spam.yaml`.

    nice -n 10 python benchmarks/finetune.py --synthetic runs/sms_spam --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from synthloom.evaluate.benchmarks import load_benchmark  # noqa: E402
from synthloom.evaluate.downstream import bootstrap_intervals, few_per_class, fit_and_score, score_predictions  # noqa: E402
from synthloom.evaluate.finetune import paired_difference  # noqa: E402
from synthloom.evaluate.seeds import markdown_table, summarize, write_per_seed  # noqa: E402
from synthloom.records import read_records  # noqa: E402
from synthloom.train.lm import LMSettings, train_lm  # noqa: E402
from synthloom.train.lm_models import load_model  # noqa: E402
from synthloom.train.lm_use import choose_labels, classification_messages, classification_row  # noqa: E402

DATA = Path(os.environ.get("SYNTHLOOM_DATA", "/work/shared/data")) / "sms_spam"
# The label names alone: descriptions would double every prompt's length, and with it the cost on a CPU.
LABELS = {"spam": None, "ham": None}
TASK = "SMS spam detection"


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=Path, required=True, help="a run directory or a curated.parquet")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--test", type=int, default=60, help="test rows scored (a seeded, label-stratified sample of the test split)")
    ap.add_argument("--records", type=int, default=None, help="use at most this many synthetic records")
    ap.add_argument("--real-per-class", type=int, default=10)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--chars", type=int, default=120, help="messages clipped to this many characters")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the trainer's, 2e-4 with LoRA)")
    ap.add_argument("--name", default="finetune_sms", help="the per-seed results file's name")
    ap.add_argument("--out", type=Path, default=Path("/tmp/synthloom-finetune-bench"))
    args = ap.parse_args()
    os.environ.setdefault("SYNTHLOOM_THREADS", "1")

    source = args.synthetic / "curated.parquet" if args.synthetic.is_dir() else args.synthetic
    synthetic = [r for r in read_records(source) if r.label in LABELS]
    if args.records:
        synthetic = synthetic[: args.records]
    real_train = load_benchmark("sms_spam", "train", str(DATA))
    test_all = load_benchmark("sms_spam", "test", str(DATA))
    # A fixed, stratified sample of the test split: as many spam as its share, at least 15 of each.
    import random

    rng = random.Random(1234)
    spam = [r for r in test_all if r.label == "spam"]
    ham = [r for r in test_all if r.label == "ham"]
    n_spam = max(15, round(args.test * len(spam) / len(test_all)))
    test = rng.sample(spam, n_spam) + rng.sample(ham, args.test - n_spam)
    truth = [r.label for r in test]
    prompts = [classification_messages([_clip(r.text(), args.chars)], LABELS, TASK) for r in test]
    labels = list(LABELS)

    def rows(records):
        return [classification_row([_clip(r.text(), args.chars)], r.label, LABELS, TASK, r.weight) for r in records]

    def predict(name):
        model, tokenizer = load_model(name)
        return choose_labels(model, tokenizer, prompts, labels)

    print(f"synthetic: {len(synthetic)} records from {source}; test: {len(test)} real rows ({n_spam} spam); seeds {args.seeds}",
          file=sys.stderr)
    started = time.perf_counter()
    base_pred = predict(None)
    per_seed: dict[int, dict[str, float]] = {}
    detail: dict[str, dict] = {"base": score_predictions(truth, base_pred) | bootstrap_intervals(truth, base_pred, 1000)}
    costs = []
    for seed in args.seeds:
        settings = LMSettings(epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length, seed=seed,
                              learning_rate=args.lr)
        real = few_per_class(real_train, args.real_per_class, seed=seed)
        arms = [("ft_synthetic", synthetic), ("ft_real", real)]
        if seed % 2:
            arms.reverse()
        scores = {"base": score_predictions(truth, base_pred)["macro_f1"]}
        predictions = {}
        for name, data in arms:
            t0 = time.perf_counter()
            result = train_lm(rows(data), args.out / f"seed{seed}" / name, settings, data_name=name)
            predicted = predict(str(result.model_dir))
            predictions[name] = predicted
            scores[name] = score_predictions(truth, predicted)["macro_f1"]
            costs.append({"seed": seed, "arm": name, "rows": len(data), "steps": result.steps, "train_s": round(result.seconds, 1),
                          "total_s": round(time.perf_counter() - t0, 1), "loss": [result.first_loss, result.last_loss]})
            print(json.dumps(costs[-1]), file=sys.stderr)
        minilm, _ = fit_and_score(synthetic, test, "embedding_logreg", ["text"], None, seed, 0)
        scores["minilm_synthetic"] = minilm["macro_f1"]
        per_seed[seed] = scores
        detail[f"seed{seed}"] = {"ft_synthetic_vs_base": paired_difference(truth, predictions["ft_synthetic"], base_pred, seed=seed),
                                 "ft_synthetic_vs_ft_real": paired_difference(truth, predictions["ft_synthetic"], predictions["ft_real"], seed=seed)}
        print(json.dumps({"seed": seed, **scores}), file=sys.stderr)

    path = write_per_seed(ROOT / "benchmarks" / "results" / "seeds" / f"{args.name}.json", per_seed, metric="macro_f1",
                          baseline="base", settings={**{k: str(v) for k, v in vars(args).items()}, "synthetic_records": len(synthetic),
                                                     "test_rows": len(test), "costs": costs, "detail": detail})
    rows_ = summarize(per_seed, baseline="base")
    print(f"\nSMS spam, SmolLM2-135M-Instruct as a generative classifier: {len(test)} real test rows, "
          f"{len(synthetic)} synthetic / {2 * args.real_per_class} real training records, LoRA SFT {args.epochs:g} epoch, learning rate {settings.lr():g}")
    print(markdown_table(rows_, "macro-F1"))
    ft = next(r for r in rows_ if r["arm"] == "ft_synthetic")["vs_baseline"]
    met = ft.difference.mean >= 0.20 and ft.difference.low > 0
    print(f"\nMET: {'yes' if met else 'no'} (ft_synthetic - base = {ft.difference.mean:+.3f} "
          f"[{ft.difference.low:+.3f}, {ft.difference.high:+.3f}]; needs >= +0.20 and the interval above 0)")
    print(f"cost: {sum(c['train_s'] for c in costs):.0f} s training in all, peak memory "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, wall {time.perf_counter() - started:.0f} s")
    print(f"per-seed numbers: {path}")


if __name__ == "__main__":
    main()
