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
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..recipe import AugmentCheckSpec, SupportAgreeSpec
from ..records import Record
from .base import DROP, KEEP, SpecStage, mark_unlabelled, stage_for
from .support import _SupportStage

__all__ = ["AugmentCheck", "SupportAgree"]


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
