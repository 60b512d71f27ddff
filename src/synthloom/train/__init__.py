"""Training models on the data: what indirect evaluation fits before it scores on real data.

`classifiers.py` holds today's small text classifiers (MiniLM embeddings +
logistic regression, TF-IDF, a fine-tuned MiniLM), all behind one
`Trainer` protocol (`fit`, `predict`, `predict_proba`) and the `TRAINERS`
registry. A new trainer (e.g. a causal language model trained with TRL) is
a module here and one registry line; evaluation stages use trainers, and
nothing here imports evaluation.
"""

from .classifiers import TRAINERS, EmbeddingLogReg, FinetuneMiniLM, Inputs, TfidfLinear, Trainer, TrainingError, make_trainer

__all__ = ["TRAINERS", "EmbeddingLogReg", "FinetuneMiniLM", "Inputs", "TfidfLinear", "Trainer", "TrainingError", "make_trainer"]
