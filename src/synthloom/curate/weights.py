"""Re-weighting: a training weight per record, from how confident curation is in it.

For each record, the confidence c is the mean of the scores (each in
[0, 1]) that the `sources` stages wrote on it (a record none of them scored
keeps c = 1). The weight is

    w = floor + (1 - floor) * c ** power

so a record the stages are sure of weighs 1 and one they are sure is wrong
weighs `floor`. With `normalise` (the default) the weights are divided by
their mean over the records, so the data keeps its total weight (a mean of
1). The record's weight is multiplied by w (stages that re-weighted it before
still count) and written to the `weight` column, which the downstream
trainer passes to the classifier as `sample_weight`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..recipe import ReweightSpec
from ..records import Record
from .base import KEEP, REWEIGHT, SpecStage, stage_for

__all__ = ["Reweight", "confidence_weights"]


def confidence_weights(confidence: np.ndarray, floor: float = 0.1, power: float = 1.0, normalise: bool = True) -> np.ndarray:
    """w = floor + (1 - floor) * c ** power, divided by its mean when `normalise`."""
    c = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    w = floor + (1.0 - floor) * c**power
    if normalise and len(w) and w.mean() > 0:
        w = w / w.mean()
    return w


@stage_for(ReweightSpec)
class Reweight(SpecStage):
    """Writes a confidence-derived weight on every record."""

    name = "reweight"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        confidence = []
        for record in records:
            scores = [record.scores[name] for name in s.sources if record.scores.get(name) is not None]
            confidence.append(float(np.mean(scores)) if scores else 1.0)
        weights = confidence_weights(np.array(confidence), s.floor, s.power, s.normalise)
        for record, c, w in zip(records, confidence, weights):
            record.weight *= float(w)
            changed = abs(w - 1.0) > 1e-9
            reason = f"confidence {c:.2f} -> weight x{w:.2f}" if changed else ""
            record.decide(self.name, REWEIGHT if changed else KEEP, float(w), reason)
        return records
