"""Label-noise recovery on real data: cross-partition labelling vs cleanlab vs influence.

Data ($SYNTHLOOM_DATA, default ../shared/data):
- sms_spam: a fixed, stratified 20% split (seed 0) is the clean test set; of
  the rest, 200 records (seed 0) are a small clean validation set and the
  others are the training records that get noise.
- banking77 (all 77 intents): test.csv is the clean test set; 5 records per
  intent of train.csv (seed 0) are the clean validation set; the rest of
  train.csv gets noise.

Noise: 10, 20 and 30% of the training records (seed 0 for each rate) get a
different label drawn uniformly from the other labels.

Every method uses the same auxiliary model, all-MiniLM-L6-v2 embeddings +
logistic regression (C = 1), and the same held-out probabilities from 5
folds (seed 0):
- cross-partition: synthloom's `cross_partition` rule (flag when the held-out
  prediction is another label and beats the given one by >= 0.15); flagged
  records dropped, or (relabel) relabelled when the prediction has >= 0.5
  and dropped otherwise;
- cleanlab: `cleanlab.filter.find_label_issues(labels, pred_probs)` with its
  defaults (prune_by_noise_rate); flagged records dropped;
- influence: synthloom's closed-form influence of each record on the clean
  validation loss; records whose removal lowers it are flagged (at most
  half the data); k-NN Shapley (k = 10) likewise, for records of negative value.

Reported: precision, recall and F1 of the flagged records against the
records whose label was changed; the residual noise (share of wrong labels)
in the records kept; and the accuracy on the clean test set of the
downstream model (synthloom's trainer: MiniLM + logistic regression, C = 10)
trained on the kept records; "none" trains on all noisy records, "clean" on
the same records with their true labels.

    python benchmarks/label_noise.py [--datasets sms_spam banking77] [--rates 0.1 0.2 0.3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from synthloom.curate import disagreements, held_out_probabilities, influence_scores, knn_shapley_values
from synthloom.embed import Embedder
from synthloom.records import read_rows, split_rows

DATA = Path(os.environ.get("SYNTHLOOM_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")

AUX_C, FOLDS, MARGIN, RELABEL_CONFIDENCE = 1.0, 5, 0.15, 0.5


class Arrays:
    """Texts and label indices of one part of a dataset."""

    def __init__(self, texts: list[str], labels: list[str], names: list[str]):
        self.texts = texts
        index = {n: i for i, n in enumerate(names)}
        self.y = np.array([index[label] for label in labels])


def load(name: str) -> tuple[list[str], Arrays, Arrays, Arrays]:
    rng = np.random.default_rng(0)
    if name == "sms_spam":
        rows = read_rows(DATA / "sms_spam" / "SMSSpamCollection", "tsv", ["label", "text"])
        rest, test = split_rows(rows, 0.2, 0, "label")
        order = rng.permutation(len(rest))
        validation, train = [rest[i] for i in order[:200]], [rest[i] for i in order[200:]]
        label = "label"
    else:
        rows = read_rows(DATA / "banking77" / "train.csv")
        test = read_rows(DATA / "banking77" / "test.csv")
        label = "category"
        by_label: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_label.setdefault(row[label], []).append(i)
        chosen = {i for idx in by_label.values() for i in rng.choice(idx, 5, replace=False)}
        validation = [rows[i] for i in sorted(chosen)]
        train = [r for i, r in enumerate(rows) if i not in chosen]
    names = sorted({r[label] for r in rows})
    part = lambda rs: Arrays([r["text"] for r in rs], [r[label] for r in rs], names)  # noqa: E731
    return names, part(train), part(validation), part(test)


def inject(y: np.ndarray, rate: float, classes: int) -> np.ndarray:
    rng = np.random.default_rng([0, int(round(rate * 100))])
    noisy = y.copy()
    for i in rng.choice(len(y), int(round(rate * len(y))), replace=False):
        noisy[i] = rng.choice([k for k in range(classes) if k != y[i]])
    return noisy


def downstream(X: np.ndarray, labels: np.ndarray, keep: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> float:
    model = _fit(X[keep], labels[keep])
    return float((model.predict(X_test) == y_test).mean())


def _fit(X: np.ndarray, y: np.ndarray):
    """The downstream model of synthloom.evaluate's `embedding_logreg` trainer, on vectors already embedded."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, C=10.0, random_state=0).fit(X, y)


def prf(flagged: np.ndarray, wrong: np.ndarray) -> tuple[float, float, float]:
    hit = int((flagged & wrong).sum())
    p = hit / max(1, int(flagged.sum()))
    r = hit / max(1, int(wrong.sum()))
    return p, r, 2 * p * r / max(1e-12, p + r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sms_spam", "banking77"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2, 0.3])
    args = parser.parse_args()
    from cleanlab.filter import find_label_issues

    embedder = Embedder.shared()
    checks = []
    for name in args.datasets:
        names, train, validation, test = load(name)
        X, X_val, X_test = (embedder.encode(part.texts) for part in (train, validation, test))
        print(f"\n## {name}: {len(train.y)} training records, {len(validation.y)} validation, "
              f"{len(test.y)} test, {len(names)} labels\n", flush=True)
        print("| noise | method | flagged | precision | recall | F1 | residual noise in kept | kept | downstream accuracy |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        for rate in args.rates:
            noisy = inject(train.y, rate, len(names))
            wrong = noisy != train.y
            t0 = time.perf_counter()
            P = held_out_probabilities(X, noisy, len(names), FOLDS, AUX_C, 0)
            aux_s = time.perf_counter() - t0
            everyone = np.ones(len(noisy), dtype=bool)
            rows: dict[str, tuple] = {}

            def report(method: str, flagged, labels, keep) -> None:
                p, r, f = prf(flagged, wrong) if flagged is not None else (None, None, None)
                residual = float((labels[keep] != train.y[keep]).mean())
                accuracy = downstream(X, labels, keep, X_test, test.y)
                rows[method] = (f, residual, accuracy)
                cells = ["-", "-", "-", "-"] if flagged is None else [str(int(flagged.sum())), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}"]
                print(f"| {rate:.0%} | {method} | {' | '.join(cells)} | {residual:.3f} | {int(keep.sum())} | {accuracy:.3f} |", flush=True)

            report("none (noisy)", None, noisy, everyone)
            report("clean labels", None, train.y, everyone)
            flagged = disagreements(P, noisy, MARGIN)
            report("cross-partition (drop)", flagged, noisy, ~flagged)
            relabelled = noisy.copy()
            confident = flagged & (P.max(axis=1) >= RELABEL_CONFIDENCE)
            relabelled[confident] = P.argmax(axis=1)[confident]
            report("cross-partition (relabel)", flagged, relabelled, ~flagged | confident)
            flagged = find_label_issues(noisy, P)
            report("cleanlab find_label_issues", flagged, noisy, ~flagged)
            t0 = time.perf_counter()
            scores = influence_scores(X, noisy, X_val, validation.y, AUX_C)
            influence_s = time.perf_counter() - t0
            report("influence", _most_harmful(scores), noisy, ~_most_harmful(scores))
            shapley = knn_shapley_values(X, noisy, X_val, validation.y, 10)
            report("k-NN Shapley", _most_harmful(shapley), noisy, ~_most_harmful(shapley))
            print(f"|  | (held-out probabilities {aux_s:.0f} s, influence {influence_s:.0f} s) |  |  |  |  |  |  |  |", flush=True)
            ours, cl = rows["cross-partition (drop)"], rows["cleanlab find_label_issues"]
            checks.append((name, rate, ours, cl))
    print("\n## Goal: cross-partition (drop) against cleanlab\n")
    print("| dataset | noise | F1 ours / cleanlab | residual noise ours / cleanlab | downstream ours / cleanlab | met |")
    print("|---|---|---|---|---|---|")
    for name, rate, ours, cl in checks:
        met = ours[0] >= cl[0] and ours[1] <= cl[1] and ours[2] >= cl[2]
        print(f"| {name} | {rate:.0%} | {ours[0]:.3f} / {cl[0]:.3f} | {ours[1]:.3f} / {cl[1]:.3f} | "
              f"{ours[2]:.3f} / {cl[2]:.3f} | {'yes' if met else 'NO'} |")
    sys.stdout.flush()


def _most_harmful(values: np.ndarray, max_fraction: float = 0.5) -> np.ndarray:
    """The stage's rule: negative values, the lowest first, at most `max_fraction` of the records."""
    harmful = np.flatnonzero(values < 0)
    harmful = harmful[np.argsort(values[harmful], kind="stable")][: int(max_fraction * len(values))]
    flagged = np.zeros(len(values), dtype=bool)
    flagged[harmful] = True
    return flagged


if __name__ == "__main__":
    main()
