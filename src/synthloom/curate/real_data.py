"""Checks for model-touched real data: rewrites of real examples, and model labels on a real pool.

Two ways of using real text when real labels are scarce need their own
check against the support set:

- `augment_check`: a rewrite of a real example (generation mode
  `augmentation`) must be neither a near-copy of its source (rapidfuzz
  ratio or embedding cosine at or above a ceiling: it adds nothing) nor a
  change of meaning (embedding cosine below a floor, or the support-trained
  model confidently giving another label, at the threshold where its
  held-out support predictions reach `precision`). Each drop says which.
- `support_agree`: a real record labelled by the model (annotation mode) is
  kept when the support-trained model's top label is the same; otherwise it
  is dropped with the support model's probability of the given label as its
  score, so the review app (`synthloom review RUN --rejected`) shows the
  disagreements least confident first and a person decides them.
- `support_posterior`: the same pool, every record kept, labelled by both
  judges at once. Agreement keeps the errors both make (on SMS spam the
  135M model called 35-61% of ham spam, and the support model agreed on
  11-33 of them a seed); a posterior weighs the model's word by how often
  it is right. The model's confusion matrix M[true, said] is counted (with
  a pseudo-count) on the model's labels for the support set's own texts
  (annotated in the same run, or a calibration file). Then p(c | text, said) ~ p_support(c | text) x (stated
  share of c / its support share) x M[c, said] (Dawid and Skene's
  combination of annotators with a known confusion matrix, and Saerens et
  al.'s prior correction for a balanced support): the argmax is the label
  and the posterior multiplies the weight.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..recipe import AugmentCheckSpec, SupportAgreeSpec, SupportPosteriorSpec
from ..records import Record, load_dataset
from .base import DROP, KEEP, REWEIGHT, SpecStage, mark_unlabelled, stage_for
from .relabel import relabel
from .support import _SupportStage

__all__ = ["AugmentCheck", "SupportAgree", "SupportPosterior", "confusion", "model_labels_on_support", "posterior", "share_ratio"]


@stage_for(SupportAgreeSpec)
class SupportAgree(_SupportStage):
    """Keeps model-labelled records whose label the support model also predicts."""

    name = "support_agree"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        support, judged, X = self._prepare(records)
        if not judged:
            return records
        P = support.probabilities(X)
        for record, p in zip(judged, P):
            given = float(p[support.index[record.label]])
            best = support.labels[int(p.argmax())]
            if best == record.label:
                record.decide(self.name, KEEP, given, f"support model agrees ({best}, p={p.max():.2f})")
            else:
                record.decide(self.name, DROP, given, f"support model says {best} (p={p.max():.2f}), "
                              f"the model said {record.label} (p={given:.2f}); {self._about(support)}")
        return records


def model_labels_on_support(support: Sequence[Record], calibration: Sequence[Record], labels: Sequence[str],
                            field: str | None = None) -> np.ndarray:
    """Per support record: the index of the label the model gave its text in `calibration` (-1: none given)."""
    index = {label: i for i, label in enumerate(labels)}
    said_for = {r.text(field): index[r.label] for r in calibration if r.label in index}
    return np.array([said_for.get(r.text(), -1) for r in support], dtype=int)


def confusion(y: np.ndarray, said: np.ndarray, n: int) -> np.ndarray:
    """counts[true, said] over the support rows whose model label is known (said >= 0)."""
    known = said >= 0
    counts = np.zeros((n, n))
    np.add.at(counts, (y[known], said[known]), 1)
    return counts


def share_ratio(y: np.ndarray, labels: Sequence[str], shares: dict[str, float] | None) -> np.ndarray:
    """Per label: its stated share over its share of these support rows (0 where it has none).

    `{}` (none stated): every label equal; `None`: as they fall in the support (every ratio 1). Labels the
    shares leave out count 0 (the task says they do not occur)."""
    if shares is None:
        return np.ones(len(labels))
    counts = np.bincount(y, minlength=len(labels)).astype(float)
    target = np.array([float(shares.get(label, 0.0)) for label in labels]) if shares else np.ones(len(labels))
    if target.sum() <= 0:
        raise ValueError("label shares must not all be 0")
    target = target / target.sum()
    observed = counts / counts.sum()
    return np.divide(target, observed, out=np.zeros(len(labels)), where=observed > 0)


def posterior(P: np.ndarray, said: np.ndarray, counts: np.ndarray, smoothing: float, prior_ratio: np.ndarray) -> np.ndarray:
    """p(c | text, said): the support model's P, shifted to the stated shares, times M[c, said] (rows of counts + smoothing)."""
    M = counts + smoothing
    M = M / np.maximum(M.sum(1, keepdims=True), 1e-12)
    joint = P * prior_ratio[None, :] * M[:, said].T
    return joint / np.maximum(joint.sum(1, keepdims=True), 1e-300)


@stage_for(SupportPosteriorSpec)
class SupportPosterior(_SupportStage):
    """Relabels and weights model-labelled records by the posterior of both judges; drops none unless asked."""

    name = "support_posterior"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        support, judged, X = self._prepare(records)
        labels = support.labels
        support_texts = {r.text() for r in support.data.records}
        is_support = np.array([r.text(self.field) in support_texts for r in judged], dtype=bool)
        own = [r for r, inside in zip(judged, is_support) if inside]
        if s.calibration is not None:
            said_on_support = model_labels_on_support(support.data.records, load_dataset(s.calibration), labels)
            where = f"the calibration file {s.calibration.path}"
        else:  # the support texts annotated in this run: counted, then dropped (they are the support)
            said_on_support = model_labels_on_support(support.data.records, own, labels, self.field)
            where = "the records handed to it (annotate the support texts too, or give `calibration:`)"
        counts, matched = confusion(support.data.y, said_on_support, len(labels)), int((said_on_support >= 0).sum())
        if matched == 0:
            raise ValueError(f"support_posterior: none of the {len(support.data.records)} support texts is in "
                             f"{where}: it needs the model's labels on the support set")
        for record in own:
            record.decide(self.name, DROP, None, "a support text: its model label was counted in the confusion matrix, "
                          "the support set itself is the real labelled data")
        judged = [r for r, inside in zip(judged, is_support) if not inside]
        X = X[~is_support] if len(is_support) else X
        shares = dict(self.context.label_shares) if s.shares == "task" else None
        ratio = share_ratio(support.data.y, labels, shares)
        said = np.array([support.index[r.label] for r in judged], dtype=int)
        post = posterior(support.probabilities(X), said, counts, s.smoothing, ratio) if judged else np.zeros((0, len(labels)))
        right = np.diag(counts).sum() / max(counts.sum(), 1)
        about = (f"the model's labels were right on {right:.0%} of {matched} support texts; "
                 f"{'stated shares' if shares else 'equal shares' if shares is not None else 'support shares'}")
        changed = 0
        for record, p, l in zip(judged, post, said):
            best = int(p.argmax())
            weight = float(p[best])
            said_for = ", ".join(f"{labels[c]} {counts[c, l]:.0f}/{counts[c].sum():.0f}" for c in range(len(labels)) if counts[c, l])
            why = (f"posterior {labels[best]} {weight:.2f} (the model said {labels[l]}: "
                   + (f"it says that for {said_for} support texts" if said_for else "it never said that on the support texts")
                   + f"); {about}")
            if weight < s.min_posterior:
                record.decide(self.name, DROP, weight, why)
                continue
            record.weight *= weight
            if best != l:
                relabel(record, self.name, labels[best], weight, why)
                changed += 1
            else:
                record.decide(self.name, REWEIGHT, weight, why)
        self.summary = {"calibration_matched": matched, "model_right_on_support": round(float(right), 4), "relabelled": changed,
                        "confusion": {labels[c]: {labels[k]: int(counts[c, k]) for k in range(len(labels)) if counts[c, k]}
                                      for c in range(len(labels))}}
        return records


@stage_for(AugmentCheckSpec)
class AugmentCheck(SpecStage):
    """Drops rewrites that copy their source or lost its meaning; keeps records that are not rewrites."""

    name = "augment_check"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        from rapidfuzz import fuzz

        from .support import fit_support_model, load_support

        s = self.spec
        mark_unlabelled(records, self.name)
        rewrites = [r for r in records if r.meta.get("source_text") and r.label is not None]
        for r in records:
            if r.label is not None and not r.meta.get("source_text"):
                r.decide(self.name, KEEP, None, "not a rewrite")
        if not rewrites:
            return records
        embed = self.context.get_embedder().encode
        A = np.asarray(embed([r.text(self.field) for r in rewrites]))
        B = np.asarray(embed([str(r.meta["source_text"]) for r in rewrites]))
        cosine = (A * B).sum(1) / np.maximum(np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1), 1e-12)
        support = fit_support_model(load_support(s, self.context), self.context, s.folds, s.c, s.seed)
        threshold = support.threshold(s.precision)
        P = support.probabilities(A)
        for i, record in enumerate(rewrites):
            ratio = fuzz.ratio(record.text(self.field).casefold(), str(record.meta["source_text"]).casefold())
            cos = float(cosine[i])
            best = int(P[i].argmax())
            other = (record.label in support.index and support.labels[best] != record.label
                     and threshold is not None and P[i, best] >= threshold)
            if ratio >= s.max_ratio:
                record.decide(self.name, DROP, cos, f"near-copy: rapidfuzz ratio {ratio:.0f} >= {s.max_ratio:g}")
            elif cos >= s.max_cosine:
                record.decide(self.name, DROP, cos, f"near-copy: cosine {cos:.2f} >= {s.max_cosine:g}")
            elif cos < s.min_cosine:
                record.decide(self.name, DROP, cos, f"meaning changed: cosine {cos:.2f} < {s.min_cosine:g}")
            elif other:
                record.decide(self.name, DROP, cos, f"meaning changed: support model says {support.labels[best]} "
                              f"(p={P[i, best]:.2f} >= {threshold:.2f}), not {record.label}")
            else:
                record.decide(self.name, KEEP, cos, f"rewrite: ratio {ratio:.0f}, cosine {cos:.2f}")
        return records
