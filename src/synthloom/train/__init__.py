"""Training models on the data: what indirect evaluation fits before it scores on real data.

`classifiers.py` holds today's small text classifiers (MiniLM embeddings +
logistic regression, TF-IDF, a fine-tuned MiniLM), all behind one
`Trainer` protocol (`fit`, `predict`, and the `selection` it made) and the `TRAINERS`
registry. `selection.py` is the one rule by which the linear trainers
choose their regularisation (cross-validation on their own training data).
A new trainer (e.g. a causal language model trained with TRL) is
a module here and one registry line; evaluation stages use trainers, and
nothing here imports evaluation.
"""

from .classifiers import TRAINERS, EmbeddingLogReg, FinetuneMiniLM, Inputs, TfidfLinear, Trainer, TrainingError, make_trainer
from .selection import C_GRID, folds_for, select_and_fit

__all__ = [
    "C_GRID", "TRAINERS", "EmbeddingLogReg", "FinetuneMiniLM", "Inputs", "TfidfLinear", "Trainer", "TrainingError",
    "folds_for", "make_trainer", "select_and_fit",
]
