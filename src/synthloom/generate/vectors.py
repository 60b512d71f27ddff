"""Sentence vectors for choosing demonstrations, kept on disk between runs.

Nearest and diverse (MMR) selection compare each record's query with every
support example. The support set is embedded once per run directory: the
vectors are saved in `embeddings.npz` (keyed by a hash of each text), so a
resumed or repeated run does not load the embedding model for texts it has
already seen; within a process, `Embedder` keeps them too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..embed import Embedder
from ..records import atomic_path


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class VectorCache:
    """Text -> unit vector, from memory, then `path`, then the embedding model."""

    def __init__(self, path: str | Path | None = None, embedder: Embedder | None = None):
        self.path = Path(path) if path is not None else None
        self.embedder = embedder
        self._vectors: dict[bytes, np.ndarray] | None = None
        self._dirty = False

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            if self.path is not None and self.path.exists():
                with np.load(self.path) as data:
                    keys, matrix = data["keys"], data["vectors"]
                self._vectors = {bytes(k): v for k, v in zip(keys, matrix)}
        return self._vectors

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._load()
        keys = [text_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in vectors}
        if todo:
            embedder = self.embedder or Embedder.shared()
            fresh = embedder.encode(list(todo.values()))
            vectors.update(zip(todo, fresh))
            self._dirty = True
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([vectors[k] for k in keys])

    def save(self) -> None:
        if self.path is None or not self._dirty or not self._vectors:
            return
        keys = np.array([np.frombuffer(k, dtype=np.uint8) for k in self._vectors])
        matrix = np.stack(list(self._vectors.values()))
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=keys, vectors=matrix)
        self._dirty = False


__all__ = ["VectorCache", "text_key"]
