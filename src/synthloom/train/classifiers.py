"""Classifiers for indirect evaluation: small models fit on the data, then tested on real data.

Three, from fast to thorough, all honouring per-record sample weights from
curation. The two linear ones choose their regularisation C by
cross-validation on their own training data, by one rule for every setting
(`selection.py`); what they chose is their `selection`:

- `embedding_logreg` (default): logistic regression on the bundled MiniLM
  sentence embeddings. Seconds on a laptop, and sensitive to what synthetic
  data gets wrong (off-task texts, wrong labels, no variety).
- `tfidf_linear`: logistic regression on TF-IDF word 1-2-grams; no neural
  model at all, and blind to meaning, so it shows how much of a result is
  surface vocabulary.
- `finetune_minilm`: the bundled MiniLM encoder fine-tuned with a linear
  classification head on the CPU (a fresh copy; the shared embedder is
  never touched). Its hyperparameters (epochs, learning rate) are fixed, not
  cross-validated: each fold would be a whole fine-tune (minutes per
  thousand texts and epoch on 2 cores), so a grid of 6 values over 5 folds
  would cost 30 fine-tunes per setting. Its `selection` says so.

An input is a tuple of texts: one for classification, two for sentence-pair
tasks (premise, hypothesis). Pairs become [u, v, |u-v|, u*v] for the
embedding model (as in Sentence-BERT), "a [SEP] b" for TF-IDF, and a token
pair for the fine-tuned encoder.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ..embed import DEFAULT_MODEL, Embedder
from .selection import select_and_fit

Inputs = Sequence[tuple[str, ...]]


class TrainingError(ValueError):
    pass


class Trainer(Protocol):
    name: str
    selection: dict[str, Any]  # the hyperparameters it used and how they were chosen, after `fit`

    def fit(self, inputs: Inputs, labels: Sequence[str], weights: Sequence[float] | None = None) -> Trainer: ...

    def predict(self, inputs: Inputs) -> list[str]: ...


def _check(labels: Sequence[str]) -> None:
    if len(set(labels)) < 2:
        raise TrainingError(f"training needs at least two labels, found {sorted(set(labels))}")


def _weights(weights: Sequence[float] | None) -> np.ndarray | None:
    return None if weights is None else np.asarray(weights, dtype=float)


class EmbeddingLogReg:
    """Logistic regression on sentence embeddings."""

    name = "embedding_logreg"

    def __init__(self, embedder: Embedder | None = None, seed: int = 0, C: float | None = None):
        self.embedder = embedder
        self.seed = seed
        self.C = C  # None: chosen by cross-validation on the training data
        self.model: Any = None
        self.selection: dict[str, Any] = {}

    def features(self, inputs: Inputs) -> np.ndarray:
        embedder = self.embedder or Embedder.shared()
        width = len(inputs[0]) if inputs else 1
        if width == 1:
            return embedder.encode([x[0] for x in inputs])
        u = embedder.encode([x[0] for x in inputs])
        v = embedder.encode([x[1] for x in inputs])
        return np.hstack([u, v, np.abs(u - v), u * v])

    def fit(self, inputs: Inputs, labels: Sequence[str], weights: Sequence[float] | None = None) -> EmbeddingLogReg:
        _check(labels)
        # The texts are embedded once; the cross-validation works on the matrix.
        self.model, self.selection = select_and_fit(
            lambda final: final, "C", self.features(inputs), labels, _weights(weights), self.seed, C=self.C
        )
        return self

    def predict(self, inputs: Inputs) -> list[str]:
        return [str(p) for p in self.model.predict(self.features(inputs))]


class TfidfLinear:
    """Logistic regression on TF-IDF word uni- and bigrams."""

    name = "tfidf_linear"

    def __init__(self, seed: int = 0, C: float | None = None):
        self.seed = seed
        self.C = C  # None: chosen by cross-validation on the training data
        self.model: Any = None
        self.selection: dict[str, Any] = {}

    @staticmethod
    def _join(inputs: Inputs) -> list[str]:
        return [" [SEP] ".join(x) for x in inputs]

    def fit(self, inputs: Inputs, labels: Sequence[str], weights: Sequence[float] | None = None) -> TfidfLinear:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        _check(labels)
        # The vocabulary is learned inside each fold, so a held-out fold's words are never seen.
        self.model, self.selection = select_and_fit(
            lambda final: make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), final),
            "logisticregression__C", self._join(inputs), labels, _weights(weights), self.seed, C=self.C,
        )
        return self

    def predict(self, inputs: Inputs) -> list[str]:
        return [str(p) for p in self.model.predict(self._join(inputs))]


class FinetuneMiniLM:
    """The MiniLM encoder with a linear head, fine-tuned end to end on the CPU.

    Mean pooling over tokens, weighted cross-entropy (each record's loss
    times its weight), AdamW. Defaults suit a few hundred to a few thousand
    short texts: about a minute per thousand texts and epoch on 2 cores.
    """

    name = "finetune_minilm"

    def __init__(
        self,
        model_name: str | None = None,
        seed: int = 0,
        epochs: int = 4,
        batch_size: int = 16,
        learning_rate: float = 5e-5,
        max_length: int = 128,
    ):
        self.model_name = model_name
        self.seed = seed
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_length = max_length
        self.classes: list[str] = []
        self._encoder: Any = None
        self._tokenizer: Any = None
        self._head: Any = None
        self.selection: dict[str, Any] = {}

    def _encode(self, inputs: Inputs) -> Any:
        import torch

        batch = self._tokenizer(
            [x[0] for x in inputs],
            [x[1] for x in inputs] if len(inputs[0]) > 1 else None,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        hidden = self._encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self._head(torch.nn.functional.normalize(pooled, dim=-1) * 10.0)

    def fit(self, inputs: Inputs, labels: Sequence[str], weights: Sequence[float] | None = None) -> FinetuneMiniLM:
        import torch

        _check(labels)
        torch.manual_seed(self.seed)
        sentence_model = Embedder(self.model_name or DEFAULT_MODEL).model
        transformer = sentence_model[0]
        self._encoder, self._tokenizer = transformer.auto_model, transformer.tokenizer
        self.classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        self._head = torch.nn.Linear(self._encoder.config.hidden_size, len(self.classes))
        y = torch.tensor([index[l] for l in labels])
        w = torch.tensor(_weights(weights) if weights is not None else np.ones(len(labels)), dtype=torch.float32)
        params = list(self._encoder.parameters()) + list(self._head.parameters())
        optimizer = torch.optim.AdamW(params, lr=self.learning_rate)
        rng = np.random.default_rng(self.seed)
        self._encoder.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(inputs))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = self._encode([inputs[i] for i in idx])
                losses = torch.nn.functional.cross_entropy(logits, y[idx], reduction="none")
                loss = (losses * w[idx]).sum() / w[idx].sum().clamp(min=1e-9)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self._encoder.eval()
        self.selection = {
            "epochs": self.epochs, "learning_rate": self.learning_rate, "folds": 0,
            "reason": "fixed, not cross-validated: each fold would be a whole fine-tune",
        }
        return self

    def predict(self, inputs: Inputs) -> list[str]:
        import torch

        out: list[str] = []
        with torch.no_grad():
            for start in range(0, len(inputs), 64):
                logits = self._encode(list(inputs[start : start + 64]))
                out.extend(self.classes[i] for i in logits.argmax(-1).tolist())
        return out


TRAINERS: dict[str, Callable[..., Trainer]] = {
    EmbeddingLogReg.name: lambda embedder=None, seed=0, C=None: EmbeddingLogReg(embedder, seed, C),
    TfidfLinear.name: lambda embedder=None, seed=0, C=None: TfidfLinear(seed, C),
    FinetuneMiniLM.name: lambda embedder=None, seed=0, C=None: FinetuneMiniLM(
        None if embedder is None else embedder.model_name, seed
    ),
}


def make_trainer(name: str, embedder: Embedder | None = None, seed: int = 0, C: float | None = None) -> Trainer:
    """A trainer by name (`embedding_logreg`, `tfidf_linear`, `finetune_minilm`).

    `C`: a fixed regularisation for the linear ones; None (the default) chooses it by cross-validation."""
    try:
        return TRAINERS[name](embedder=embedder, seed=seed, C=C)
    except KeyError:
        raise TrainingError(f"unknown trainer {name!r}; known: {', '.join(TRAINERS)}") from None


__all__ = ["EmbeddingLogReg", "FinetuneMiniLM", "TRAINERS", "Trainer", "TfidfLinear", "TrainingError", "make_trainer"]
