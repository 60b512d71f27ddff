"""The automatic choice: which synthetic data to add to a small real support set, chosen on that set alone.

Plain generated records, the same records relabelled or weighted by a
support-trained model, rewrites of the support (augmentation), a real pool
labelled by the model: which helps depends on the task, the model and the
support set, and the test data may not decide. `support_choice` decides by
K-fold cross-validation over the support set only:

  for each fold: the support model is fitted on the other folds (its C and
  its trust threshold chosen inside them); each candidate set is built from
  that model (an augmentation whose source is in the held-out fold is left
  out, so no rewrite of a held-out example is trained on, and so is a
  generated record that was shown a held-out example as a demonstration:
  it may copy it, and would score the candidate on its own prompt); a classifier is
  trained on the other folds + the candidate at each
  factor (synthetic weight relative to a real record's 1) and predicts the
  held-out fold; the classifier is the final trainer's (`embedding_logreg`):
  logistic regression on the embeddings, its C chosen by the trainers' one
  rule (`train/selection.py`: stratified k-fold on its own training data,
  log loss, sample weights in fits and scores, ties to the smaller C) on
  the fold's training part + the candidate only, so the held-out fold never
  informs C (nested cross-validation). Kept fast: one BLAS thread, the
  embeddings computed once and reused by every fold, candidate and factor,
  the trainers' grid of 6 values over at most 3 inner folds; a recipe's
  `c` fixes C instead;

(with a small support the folds are redrawn, `repeats`, until at least 100
held-out predictions are averaged). Held-out predictions are scored under the
class mix the classifier will meet: each held-out record is weighted by its
label's stated share (`task.label_weights`, equal when none is stated) over
its share of the support (`shares: task`). A balanced support set otherwise
hides what a candidate costs on the common class: on SMS spam (13% spam) the
model-labelled pool called 35-61% of ham spam, and a balanced 10-per-class
support scored that pool best on 4 of 5 seeds while the test set scored it
worse than the support alone. The candidate with the best held-out macro-F1
(the mean over the redraws; ties: the earlier in the list, `none` first)
then wins only if its gain over the baseline (`none` unless `baseline:`
says otherwise) exceeds one standard error of that gain, the paired
difference over every held-out fold (`rule: one_se`, the
one-standard-error rule of model selection, with `none` as the simplest
model): with 20 support records a few lucky folds otherwise decide. The winner is then built once more
from the support model fitted on the whole support and handed on; every
other record is dropped with the reason. What was tried and scored is the
stage's `summary` (the run manifest's curation funnel, and the report).

Records say where they came from in `meta["origin"]`: `augment` (the
`augmentation:` mode, with `meta["source_text"]`), `pool` (annotation of
unlabelled real inputs: the `pool` candidate keeps the records whose model
label the support model agrees with, `self` keeps every one with the support
model's label, `posterior` every one with the label and weight
support_posterior would give it), otherwise generated. A combined candidate
(`posterior+filter`) trains on both parts' rows, which never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..recipe import SupportChoiceSpec
from ..train.selection import C_GRID
from ..records import Record, load_dataset
from .auxiliary import LabelledMatrix
from .real_data import confusion, model_labels_on_support, share_ratio
from .real_data import posterior as judges_posterior
from .base import DROP, KEEP, RELABEL, REWEIGHT, SpecStage, mark_unlabelled, stage_for
from .support import SupportModel, _folds, load_support, support_model_from_matrix
from .weights import confidence_weights

__all__ = ["Candidate", "SupportChoice", "choose", "origin_of"]

# A few held-out predictions make a noisy score: with a small support the K folds are redrawn
# until at least this many predictions are averaged (20 real records: 5 repeats).
HELD_OUT_PREDICTIONS = 100
MAX_REPEATS = 5


def origin_of(record: Record) -> str:
    origin = record.meta.get("origin")
    return origin if origin in ("augment", "pool") else "generated"


@dataclass
class Candidate:
    """One candidate's rows for one support model: which synthetic rows, their labels and weights."""

    rows: np.ndarray  # indices into the synthetic records
    y: np.ndarray
    w: np.ndarray


@dataclass
class Synthetic:
    """The synthetic records as arrays: embeddings, label indices, weights, origins, source rows."""

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    origin: np.ndarray
    source: np.ndarray  # for augmentations: the support row it rewrites (-1: none found)
    extra: dict[str, Any] = field(default_factory=dict)
    shown: np.ndarray | None = None  # (synthetic rows x support rows): the support examples its prompt showed
    said: np.ndarray | None = None  # per support row: the model's label index on its text (-1: not known), for `posterior`

    def leaks(self, rows: np.ndarray, support_rows: set[int]) -> np.ndarray:
        """Of `rows`, those whose prompt showed a support example outside `support_rows` (a held-out one)."""
        if self.shown is None or not len(rows):
            return np.zeros(len(rows), dtype=bool)
        held = np.ones(self.shown.shape[1], dtype=bool)
        held[list(support_rows)] = False
        return self.shown[rows][:, held].any(1)


@dataclass
class Prior:
    """What the `posterior` candidate needs beyond the support model: the support's labels, the shares, a pseudo-count."""

    y: np.ndarray  # the support rows' labels
    shares: dict[str, float] | None
    smoothing: float = 1.0

    def posterior(self, syn: Synthetic, rows: np.ndarray, P: np.ndarray, support_rows: set[int], labels: list[str]) -> np.ndarray | None:
        """p(label | text, the model's label) for `rows`, from the model's labels on the support rows in `support_rows` only
        (a held-out support row's label never informs the confusion matrix its own fold is scored with)."""
        if syn.said is None:
            return None
        inside = np.array(sorted(support_rows), dtype=int)
        if not (syn.said[inside] >= 0).any():
            return None
        counts = confusion(self.y[inside], syn.said[inside], len(labels))
        ratio = share_ratio(self.y[inside], labels, self.shares)
        return judges_posterior(P[rows], syn.y[rows], counts, self.smoothing, ratio)


def build(name: str, model: SupportModel, syn: Synthetic, P: np.ndarray, support_rows: set[int],
          precision: float, floor: float, prior: Prior | None = None) -> Candidate | None:
    """The candidate `name` under `model` (P: its probabilities on the synthetic rows); `a+b`: both parts' rows
    together (a pool treatment and a treatment of the generated records: their rows never overlap)."""
    if "+" in name:
        parts = [build(part, model, syn, P, support_rows, precision, floor, prior) for part in name.split("+")]
        if any(part is None for part in parts):
            return None
        return Candidate(*(np.concatenate([getattr(part, f) for part in parts]) for f in ("rows", "y", "w")))
    empty = Candidate(np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
    if name == "none":
        return empty
    if name in ("plain", "filter", "weight"):
        rows = np.flatnonzero(syn.origin == "generated")
        rows = rows[~syn.leaks(rows, support_rows)]
    elif name == "augment":
        rows = np.array([i for i in np.flatnonzero(syn.origin == "augment") if syn.source[i] < 0 or syn.source[i] in support_rows],
                        dtype=int)
    elif name == "pool":  # the records whose model-given label the support model also predicts
        rows = np.flatnonzero(syn.origin == "pool")
        rows = rows[P[rows].argmax(1) == syn.y[rows]] if len(rows) else rows
    else:  # self, posterior: every pool record, labelled by the support model (and the model's label)
        rows = np.flatnonzero(syn.origin == "pool")
    if not len(rows):
        return None
    y, w = syn.y[rows].copy(), syn.w[rows].copy()
    if name == "self":
        y = P[rows].argmax(1)
    elif name == "posterior":
        post = prior.posterior(syn, rows, P, support_rows, model.labels) if prior is not None else None
        if post is None:
            return None
        y = post.argmax(1)
        w = w * post.max(1)
    if name == "filter":
        threshold = model.threshold(precision)
        if threshold is not None:
            best = P[rows].argmax(1)
            change = (best != y) & (P[rows].max(1) >= threshold)
            y[change] = best[change]
    elif name == "weight":
        w = w * confidence_weights(P[rows, y], floor, 1.0, True)
    return Candidate(rows, y, w)


def _classifier(X: np.ndarray, y: np.ndarray, w: np.ndarray, c: float | None, seed: int) -> Any:
    """The final trainer's classifier on these rows: C by its cross-validation rule on them alone (or `c`).

    Its grid is the trainers' own (C_GRID, 0.01 ... 1000): 6 values x 3 inner folds + 1 refit = 19 small
    fits per outer fold, candidate and factor. A grid without its outer values was tried and dropped: on
    10 real SMS per class every fold's classifier chose its top value (100), where the trainers would
    have gone beyond it."""
    from ..train.selection import select_and_fit

    model, _ = select_and_fit(lambda final: final, "C", X, y.tolist(), w, seed, grid=C_GRID, C=c)
    return model


def choose(support: LabelledMatrix, syn: Synthetic, names: Sequence[str], factors: Sequence[float], *,
           folds: int = 5, repeats: int | None = None, c: float | None = None, precision: float = 0.9,
           floor: float = 0.1, seed: int = 0, shares: dict[str, float] | None = None, rule: str = "one_se",
           smoothing: float = 1.0, baseline: str = "none",
           fit: Callable[[np.ndarray, np.ndarray, np.ndarray, float, int], Any] = _classifier) -> dict[str, Any]:
    """Held-out support macro-F1 of every (candidate, factor); the winner and the table.

    `shares`: label -> the share the classifier will meet, what held-out records are weighted toward (`{}`:
    equal shares; None: as they fall in the support); `rule`: `one_se` (the best replaces the baseline only past one
    standard error of its gain over it) or `best`; `baseline`: `none`, a candidate's name, or `auto` (see _baseline)."""
    from threadpoolctl import threadpool_limits

    if rule not in ("one_se", "best"):
        raise ValueError(f"rule must be one_se or best, not {rule!r}")
    with threadpool_limits(limits=1, user_api="blas"):
        return _choose(support, syn, names, factors, folds, repeats, c, precision, floor, seed, fit, shares, rule, smoothing,
                       baseline)


def held_out_weights(y: np.ndarray, labels: Sequence[str], shares: dict[str, float] | None) -> np.ndarray:
    """Each support record's weight in a held-out score: its label's stated share over its share of the support."""
    return share_ratio(y, labels, shares)[y]


def _choose(support: LabelledMatrix, syn: Synthetic, names: Sequence[str], factors: Sequence[float], folds: int,
            repeats: int | None, c: float | None, precision: float, floor: float, seed: int, fit: Callable[..., Any],
            shares: dict[str, float] | None, rule: str, smoothing: float, baseline: str) -> dict[str, Any]:
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    X, y = support.X, support.y
    weight = held_out_weights(y, support.labels, shares)
    prior = Prior(y, shares, smoothing)
    k = _folds(y, folds)
    repeats = repeats or min(MAX_REPEATS, -(-HELD_OUT_PREDICTIONS // len(y)))
    predicted: dict[tuple[str, float], np.ndarray] = {}
    sizes: dict[str, list[int]] = {}
    inner_c: dict[tuple[str, float], list[float]] = {}  # the C each fold's classifier chose
    splits = [(r, train, test) for r in range(repeats)
              for train, test in StratifiedKFold(k, shuffle=True, random_state=seed + r).split(X, y)]
    for r, train, test in splits:
        part = LabelledMatrix([], X[train], y[train], support.labels)
        model = support_model_from_matrix(part, folds, c, seed)
        P = model.probabilities(syn.X) if len(syn.X) else np.zeros((0, len(support.labels)))
        rows_in = set(train.tolist())
        for name in names:
            candidate = build(name, model, syn, P, rows_in, precision, floor, prior)
            if candidate is None:
                continue
            sizes.setdefault(name, []).append(len(candidate.rows))
            for factor in ([1.0] if name == "none" else factors):
                key = (name, float(factor))
                Xt = np.vstack([X[train], syn.X[candidate.rows]])
                yt = np.concatenate([y[train], candidate.y])
                wt = np.concatenate([np.ones(len(train)), candidate.w * factor])
                out = predicted.setdefault(key, np.full((repeats, len(y)), -1))
                classifier = fit(Xt, yt, wt, c, seed)
                inner_c.setdefault(key, []).append(float(getattr(classifier, "C", float("nan"))))
                out[r, test] = np.asarray(classifier.predict(X[test]))
    labels = np.arange(len(support.labels))

    def f1(rows: np.ndarray, predicted_rows: np.ndarray) -> float:
        return float(f1_score(y[rows], predicted_rows, labels=labels, average="macro", sample_weight=weight[rows], zero_division=0))

    everything = np.arange(len(y))
    scores = {key: float(np.mean([f1(everything, row) for row in p])) for key, p in predicted.items()}
    if not scores:  # no candidate had a record in any fold (and `none` was not offered): the support alone
        return {"chosen": "none", "factor": 1.0, "folds": k, "repeats": repeats, "cv_macro_f1": None, "rule": rule,
                "baseline": None, "best_scored": None, "gain_over_baseline": None, "gain_standard_error": None,
                "held_out_shares": {},
                "scores": {}, "candidate_sizes": {}, "classifier_c": {}, "classifier_c_rule": "",
                "note": "no candidate had records: the support set alone"}
    order = {name: i for i, name in enumerate(names)}
    best = max(scores, key=lambda key: (round(scores[key], 6), -order[key[0]], key[1]))
    ref = _baseline(baseline, predicted, scores)
    best_scored, gain, error = best, None, None
    if rule == "one_se" and best != ref and ref is not None:
        # the paired gain over the baseline on every held-out fold of every redraw, and its standard error
        gains = np.array([f1(test, predicted[best][r, test]) - f1(test, predicted[ref][r, test]) for r, _, test in splits])
        gain, error = float(gains.mean()), float(gains.std(ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else float("inf")
        if not gain > error:
            best = ref
    return {
        "chosen": best[0], "factor": best[1], "folds": k, "repeats": repeats, "cv_macro_f1": round(scores[best], 4),
        "rule": rule, "baseline": None if ref is None else f"{ref[0]} x{ref[1]:g}", "best_scored": f"{best_scored[0]} x{best_scored[1]:g}",
        "gain_over_baseline": None if gain is None else round(gain, 4),
        "gain_standard_error": None if error is None else round(error, 4),
        "held_out_shares": {label: round(float(weight[y == i].sum() / weight.sum()), 4) for i, label in enumerate(support.labels)},
        "scores": {f"{name} x{factor:g}": round(s, 4) for (name, factor), s in scores.items()},
        "candidate_sizes": {name: int(np.mean(v)) for name, v in sizes.items()},
        "classifier_c": {f"{name} x{factor:g}": _median_c(cs) for (name, factor), cs in inner_c.items()},
        "classifier_c_rule": "given" if c is not None else f"CV on each fold's training part, grid {list(C_GRID)}",
    }


def _baseline(baseline: str, predicted: dict[tuple[str, float], np.ndarray],
               scores: dict[tuple[str, float], float]) -> tuple[str, float] | None:
    """What the best candidate must beat by one standard error: the `baseline` candidate at its best factor
    (`auto`: `posterior` when it was built in every fold, else `none`; a named one that was not: `none`)."""
    for name in (["posterior"] if baseline == "auto" else [baseline]) + ["none"]:
        keys = [key for key in predicted if key[0] == name and (predicted[key] >= 0).all()]
        if keys:
            return max(keys, key=lambda key: (round(scores[key], 6), -key[1]))
    return None


def _median_c(values: list[float]) -> float | None:
    """The median C the folds' classifiers chose (None: the classifier does not say)."""
    known = [v for v in values if v == v]
    return float(np.median(known)) if known else None


@stage_for(SupportChoiceSpec)
class SupportChoice(SpecStage):
    """Keeps the candidate that cross-validation on the support set scores best; drops the rest."""

    name = "support_choice"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        from .auxiliary import labelled_matrix

        s = self.spec
        support = labelled_matrix(load_support(s, self.context), self.context, None)
        index = {label: i for i, label in enumerate(support.labels)}
        mark_unlabelled(records, self.name)
        judged = [r for r in records if r.label is not None and r.label in index]
        for r in records:
            if r.label is not None and r.label not in index:
                r.decide(self.name, DROP, None, f"label {r.label!r} is not in the support set")
        support_texts = {r.text(): i for i, r in enumerate(support.records)}
        # the model's labels on the support's own texts (the `posterior` candidate's calibration): pool records
        # whose text is a support text (then dropped: they are the support), or the `calibration` file
        on_support = [r for r in judged if origin_of(r) == "pool" and r.text(self.field) in support_texts]
        for r in on_support:
            r.decide(self.name, DROP, None, "a support text: its model label calibrates the posterior candidate")
        taken = {id(r) for r in on_support}
        judged = [r for r in judged if id(r) not in taken]
        said = (model_labels_on_support(support.records, load_dataset(s.calibration), support.labels) if s.calibration is not None
                else model_labels_on_support(support.records, on_support, support.labels, self.field))
        embed = self.context.get_embedder().encode
        X = np.asarray(embed([r.text(self.field) for r in judged], progress=self.context.progress)) if judged else \
            np.zeros((0, support.X.shape[1]))
        support_ids = {r.id: i for i, r in enumerate(support.records)}
        shown = np.zeros((len(judged), len(support.records)), dtype=bool)
        for row, r in enumerate(judged):
            shown[row, [support_ids[d] for d in r.demonstrations if d in support_ids]] = True
        syn = Synthetic(
            X=X, y=np.array([index[r.label] for r in judged], dtype=int), w=np.array([r.weight for r in judged], dtype=float),
            origin=np.array([origin_of(r) for r in judged]),
            source=np.array([support_texts.get(str(r.meta.get("source_text", "")), -1) for r in judged], dtype=int),
            shown=shown, said=said if (said >= 0).any() else None,
        )
        shares = dict(self.context.label_shares) if s.shares == "task" else None
        result = choose(support, syn, s.candidates, s.factors, folds=s.folds, repeats=s.repeats, c=s.c, precision=s.precision,
                        floor=s.floor, seed=s.seed, shares=shares, rule=s.rule, smoothing=s.smoothing, baseline=s.baseline)
        result["calibration_matched"] = int((said >= 0).sum())
        model = support_model_from_matrix(support, s.folds, s.c, s.seed)
        P = model.probabilities(X) if len(X) else np.zeros((0, len(support.labels)))
        chosen = build(result["chosen"], model, syn, P, set(range(len(support.y))), s.precision, s.floor,
                       Prior(support.y, shares, s.smoothing))
        assert chosen is not None
        table = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result["scores"].items(), key=lambda kv: -kv[1]))
        margin = ""
        if result["gain_over_baseline"] is not None:
            won = result["best_scored"] == f"{result['chosen']} x{result['factor']:g}"
            margin = (f"; {result['best_scored']} gained {result['gain_over_baseline']:+.3f} over {result['baseline']}, "
                      f"standard error {result['gain_standard_error']:.3f}: " + ("kept" if won else f"not enough, {result['baseline']} kept"))
        why = (f"chosen: {result['chosen']} x{result['factor']:g} by {result['folds']}-fold CV "
               f"({result['repeats']} draw(s)) on the "
               f"{len(support.y)} support records (held-out macro-F1 {table}{margin})")
        result["kept"] = int(len(chosen.rows))
        self.summary = result
        keep = {int(row): i for i, row in enumerate(chosen.rows)}
        for row, record in enumerate(judged):
            if row not in keep:
                record.decide(self.name, DROP, None, f"not in the chosen candidate; {why}")
                continue
            i = keep[row]
            label = support.labels[int(chosen.y[i])]
            weight = float(chosen.w[i] * result["factor"])
            if label != record.label:
                record.meta.setdefault("original_label", record.label)
                record.label = label
                record.decide(self.name, RELABEL, float(P[row, int(chosen.y[i])]), why)
            elif weight != record.weight:
                record.decide(self.name, REWEIGHT, weight, why)
            else:
                record.decide(self.name, KEEP, None, why)
            record.weight = weight
        return records
