"""Label-noise recovery on real data: cross-partition labelling vs cleanlab vs influence.

Data ($SYNTHLOOM_DATA, default ../shared/data), drawn again for each seed:
- sms_spam: a stratified 20% split (by the seed) is the clean test set; of
  the rest, 200 records (by the seed) are a small clean validation set and
  the others are the training records that get noise.
- banking77 (all 77 intents): test.csv is the clean test set; 5 records per
  intent of train.csv (by the seed) are the clean validation set; the rest
  of train.csv gets noise.

Noise: 10, 20 and 30% of the training records (drawn by the seed and the
rate) get a different label drawn uniformly from the other labels.

One draw is not a result: every seed (default 0-4) draws the split, the
validation set, the noise and the folds again, and every method is scored
on every seed. Tables give each method's mean with a 95% t-interval over
seeds; the claims (cross-partition (drop) against cleanlab on F1, residual
noise and downstream accuracy; against k-NN Shapley on F1; against no
cleaning on downstream accuracy) are paired differences, seed by seed, with
their interval: "beats" only when the whole interval is on the right side
of 0, otherwise "no difference shown" (or "worse"). The raw per-seed
numbers go to benchmarks/results/seeds/label_noise-*.json: every number of
every (seed, rate) draw to label_noise-<dataset>-raw.json, written after each
draw and added to by later runs, so the seeds can run as separate jobs
(`--seeds 0 1`, then `--seeds 2 3 4`) and the tables (also `--tables-only`)
cover every seed measured so far.

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

    python benchmarks/label_noise.py [--datasets sms_spam banking77] [--rates 0.1 0.2 0.3] [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
SEEDS_DIR = Path(__file__).resolve().parent / "results" / "seeds"

AUX_C, FOLDS, MARGIN, RELABEL_CONFIDENCE = 1.0, 5, 0.15, 0.5
OURS, CLEANLAB, SHAPLEY, NONE = "cross-partition (drop)", "cleanlab find_label_issues", "k-NN Shapley", "none (noisy)"


class Arrays:
    """Row indices into the dataset's embedded texts, and label indices, of one part of a draw."""

    def __init__(self, rows: list[int], labels: list[str], names: list[str]):
        self.rows = np.array(rows, dtype=int)
        index = {n: i for i, n in enumerate(names)}
        self.y = np.array([index[label] for label in labels])


def read(name: str) -> tuple[list[dict], list[dict], str]:
    """(rows the draws split, a fixed test set or [], the label field)."""
    if name == "sms_spam":
        return read_rows(DATA / "sms_spam" / "SMSSpamCollection", "tsv", ["label", "text"]), [], "label"
    return read_rows(DATA / "banking77" / "train.csv"), read_rows(DATA / "banking77" / "test.csv"), "category"


def draw(name: str, rows: list[dict], fixed_test: list[dict], label: str, seed: int):
    """(label names, train, validation, test) of one seed; rows are numbered over rows + fixed_test."""
    rng = np.random.default_rng(seed)
    numbered = [dict(r, _i=i) for i, r in enumerate(rows)]
    if name == "sms_spam":
        rest, test = split_rows(numbered, 0.2, seed, label)
        order = rng.permutation(len(rest))
        validation, train = [rest[i] for i in order[:200]], [rest[i] for i in order[200:]]
    else:
        test = [dict(r, _i=len(rows) + i) for i, r in enumerate(fixed_test)]
        by_label: dict[str, list[int]] = {}
        for i, row in enumerate(numbered):
            by_label.setdefault(row[label], []).append(i)
        chosen = {int(i) for idx in by_label.values() for i in rng.choice(idx, 5, replace=False)}
        validation = [numbered[i] for i in sorted(chosen)]
        train = [r for i, r in enumerate(numbered) if i not in chosen]
    names = sorted({r[label] for r in rows})
    part = lambda rs: Arrays([r["_i"] for r in rs], [r[label] for r in rs], names)  # noqa: E731
    return names, part(train), part(validation), part(test)


def inject(y: np.ndarray, rate: float, classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, int(round(rate * 100))])
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


class Timer:
    """Seconds spent per step of a draw, printed after it, so a slow run says where its time goes."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.spent[step] = self.spent.get(step, 0.0) + now - self._t
        self._t = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.0f} s" for k, v in self.spent.items())


class Downstream:
    """The downstream accuracy of a kept set, fitted once per distinct training set.

    Two methods that keep the same records with the same labels (every "clean
    labels" row of a seed, whatever the noise rate; a method that flags nothing)
    train the same deterministic model, so the fit is reused: the numbers are
    the ones a fresh fit gives, the time is not spent twice."""

    def __init__(self) -> None:
        self._seen: dict[bytes, float] = {}

    def __call__(self, X: np.ndarray, labels: np.ndarray, keep: np.ndarray, X_test: np.ndarray,
                 y_test: np.ndarray, key: bytes) -> float:
        import hashlib

        digest = hashlib.sha256(key + np.packbits(keep).tobytes() + labels[keep].astype(np.int64).tobytes()).digest()
        if digest not in self._seen:
            self._seen[digest] = downstream(X, labels, keep, X_test, y_test)
        return self._seen[digest]


def one_draw(X_all: np.ndarray, names, train: Arrays, validation: Arrays, test: Arrays, rate: float, seed: int,
             find_label_issues, fitted: Downstream | None = None,
             timer: Timer | None = None) -> dict[str, dict[str, float]]:
    """Every method on one (seed, rate): {method: {f1, precision, recall, flagged, residual, kept, accuracy}}."""
    fitted = fitted or Downstream()
    timer = timer or Timer()
    X, X_val, X_test = X_all[train.rows], X_all[validation.rows], X_all[test.rows]
    draw_key = train.rows.astype(np.int64).tobytes() + b"|" + test.rows.astype(np.int64).tobytes() + b"|"
    noisy = inject(train.y, rate, len(names), seed)
    wrong = noisy != train.y
    P = held_out_probabilities(X, noisy, len(names), FOLDS, AUX_C, seed)
    timer.lap("held-out probabilities")
    everyone = np.ones(len(noisy), dtype=bool)
    out: dict[str, dict[str, float]] = {}

    def report(method: str, flagged, labels, keep) -> None:
        row = {"residual": float((labels[keep] != train.y[keep]).mean()), "kept": int(keep.sum()),
               "accuracy": fitted(X, labels, keep, X_test, test.y, draw_key)}
        if flagged is not None:
            p, r, f = prf(flagged, wrong)
            row.update(flagged=int(flagged.sum()), precision=p, recall=r, f1=f)
        out[method] = row
        timer.lap("downstream fits")

    report(NONE, None, noisy, everyone)
    report("clean labels", None, train.y, everyone)
    flagged = disagreements(P, noisy, MARGIN)
    report(OURS, flagged, noisy, ~flagged)
    relabelled = noisy.copy()
    confident = flagged & (P.max(axis=1) >= RELABEL_CONFIDENCE)
    relabelled[confident] = P.argmax(axis=1)[confident]
    report("cross-partition (relabel)", flagged, relabelled, ~flagged | confident)
    flagged = find_label_issues(noisy, P)
    timer.lap("cleanlab")
    report(CLEANLAB, flagged, noisy, ~flagged)
    harmful = _most_harmful(influence_scores(X, noisy, X_val, validation.y, AUX_C))
    timer.lap("influence")
    report("influence", harmful, noisy, ~harmful)
    harmful = _most_harmful(knn_shapley_values(X, noisy, X_val, validation.y, 10))
    timer.lap("k-NN Shapley")
    report(SHAPLEY, harmful, noisy, ~harmful)
    return out


# The claims the table makes, written before the run: (arm, baseline, metric, "higher" or "lower" is better).
CLAIMS = [
    (OURS, CLEANLAB, "f1", "higher"),
    (OURS, CLEANLAB, "residual", "lower"),
    (OURS, CLEANLAB, "accuracy", "higher"),
    (OURS, SHAPLEY, "f1", "higher"),
    (OURS, NONE, "accuracy", "higher"),
]
METRICS = {"f1": "F1 of the flagged records", "residual": "residual noise in the kept records",
           "accuracy": "downstream accuracy on the clean test set"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sms_spam", "banking77"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2, 0.3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--tables-only", action="store_true",
                        help="run nothing: print the tables from the draws already in the raw per-seed file")
    args = parser.parse_args()
    from cleanlab.filter import find_label_issues

    from synthloom.evaluate.seeds import mean_interval, paired_difference, write_per_seed

    verdicts = []
    for name in args.datasets:
        raw_path = SEEDS_DIR / f"label_noise-{name}-raw.json"
        raw = _read_raw(raw_path)
        if not args.tables_only:
            rows, fixed_test, label = read(name)
            X_all = embed(name, [r["text"] for r in rows + fixed_test])
            fitted = Downstream()
            draws = {seed: draw(name, rows, fixed_test, label, seed) for seed in args.seeds}
            for rate in args.rates:  # a rate's seeds first: a job cut short leaves whole rates, not a few seeds of each
                for seed in args.seeds:
                    names, train, validation, test = draws[seed]
                    timer = Timer()
                    result = one_draw(X_all, names, train, validation, test, rate, seed, find_label_issues, fitted, timer)
                    raw = _add_draw(raw_path, name, _rate_key(rate), seed, result)  # a job cut short keeps what it measured
                    print(f"{name} {rate:.0%} seed {seed}: {sum(timer.spent.values()):.0f} s ({timer}; "
                          f"{len(train.y)} training, {len(validation.y)} validation, {len(test.y)} test)",
                          file=sys.stderr, flush=True)
        for rate in args.rates:
            results = {int(s): r for s, r in sorted(raw.get(_rate_key(rate), {}).items(), key=lambda kv: int(kv[0]))}
            if not results:
                continue
            seeds = list(results)
            methods = list(results[seeds[0]])
            print(f"\n## {name}, {rate:.0%} noise: {len(seeds)} seeds ({', '.join(map(str, seeds))}), mean [95% CI]\n")
            print("| method | flagged | precision | recall | F1 | residual noise in kept | kept | downstream accuracy |")
            print("|---|---|---|---|---|---|---|---|")
            for m in methods:
                cell = lambda k, d=3: (mean_interval([results[s][m][k] for s in seeds]).format(d)  # noqa: E731
                                       if k in results[seeds[0]][m] else "-")
                flagged = (f"{statistics.mean(results[s][m]['flagged'] for s in seeds):.0f}"
                           if "flagged" in results[seeds[0]][m] else "-")
                kept = f"{statistics.mean(results[s][m]['kept'] for s in seeds):.0f}"
                print(f"| {m} | {flagged} | {cell('precision')} | {cell('recall')} | {cell('f1')} | "
                      f"{cell('residual')} | {kept} | {cell('accuracy')} |")
            for metric, title in METRICS.items():
                per_seed = {s: {m: v[metric] for m, v in results[s].items() if metric in v} for s in seeds}
                write_per_seed(SEEDS_DIR / f"label_noise-{name}-{int(round(rate * 100))}pct-{metric}.json", per_seed,
                               metric=title, baseline=CLEANLAB, higher_is_better=metric != "residual",
                               settings={"dataset": name, "noise": rate, "seeds": seeds, "aux_C": AUX_C,
                                         "folds": FOLDS, "margin": MARGIN, "relabel_confidence": RELABEL_CONFIDENCE})
            for arm, base, metric, better in CLAIMS:
                per_seed = {s: {m: v[metric] for m, v in results[s].items() if metric in v} for s in seeds}
                d = paired_difference(per_seed, arm, base, higher_is_better=better == "higher")
                verdicts.append((name, rate, arm, base, metric, better, d.difference, d.verdict))
    print("\n## Claims: paired differences (arm - baseline, seed by seed), 95% CI\n")
    print("| dataset | noise | claim | difference [95% CI] | verdict |")
    print("|---|---|---|---|---|")
    for name, rate, arm, base, metric, better, diff, verdict in verdicts:
        print(f"| {name} | {rate:.0%} | {arm} vs {base}: {metric} ({better} is better) | "
              f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] | {verdict} |")
    sys.stdout.flush()


def embed(name: str, texts: list[str]) -> np.ndarray:
    """The dataset's MiniLM vectors, computed once and kept (keyed by the texts) for the next job's seeds."""
    import hashlib

    key = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    path = SEEDS_DIR.parent / "embeddings" / f"{name}-{key}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.perf_counter()
    X = Embedder.shared().encode(texts)
    print(f"{name}: {len(X)} texts embedded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def _rate_key(rate: float) -> str:
    return f"{int(round(rate * 100))}pct"


def _read_raw(path: Path) -> dict:
    """The draws measured so far ({rate: {seed: {method: numbers}}}): jobs that run some seeds each add up."""
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))["draws"]


def _add_draw(path: Path, name: str, rate: str, seed: int, result: dict) -> dict:
    """Add one draw to the raw file under a lock, re-read first: two jobs running other seeds at once both count."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent.parent / f"{path.stem}.lock", "w") as lock:  # beside seeds/, not committed
        fcntl.flock(lock, fcntl.LOCK_EX)
        draws = _read_raw(path)
        draws.setdefault(rate, {})[str(seed)] = result
        _write_raw(path, draws, name)
    return draws


def _write_raw(path: Path, draws: dict, name: str) -> None:
    payload = {"dataset": name, "settings": {"aux_C": AUX_C, "folds": FOLDS, "margin": MARGIN,
                                             "relabel_confidence": RELABEL_CONFIDENCE, "downstream_C": 10.0},
               "draws": draws}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def _most_harmful(values: np.ndarray, max_fraction: float = 0.5) -> np.ndarray:
    """The stage's rule: negative values, the lowest first, at most `max_fraction` of the records."""
    harmful = np.flatnonzero(values < 0)
    harmful = harmful[np.argsort(values[harmful], kind="stable")][: int(max_fraction * len(values))]
    flagged = np.zeros(len(values), dtype=bool)
    flagged[harmful] = True
    return flagged


if __name__ == "__main__":
    main()
