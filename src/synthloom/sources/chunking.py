"""Chunking by structure: sections first, then sentences within a token budget, with overlap.

A chunk never crosses a section (a run of blocks under the same headings).
Within a section, blocks are split into sentences (segtok, the splitter
yake uses; code and table rows stay whole) and packed into chunks of at
most `max_tokens` tokens (see tokens.py); each new chunk starts with the
last sentences of the one before, up to `overlap` tokens. A sentence longer
than the budget is cut at word boundaries.

Each chunk becomes a `Record` with the chunk's text as its `text` field and
its structure in `meta` (document, title, format, section path, page,
chunk index). Its id is stable: the document's name, then a hash of the
section path (and which occurrence of it), the chunk's position within its
section and its text. Editing one section of a document changes only that
section's chunk ids, so a run over the edited documents asks again only
about the chunks that changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from ..records import Record
from .documents import Block, Document
from .tokens import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, default_counter

ID_VERSION = "v1"


@dataclass(frozen=True)
class Piece:
    text: str
    tokens: int
    page: int | None
    block: int  # the block it comes from, within its section: pieces of one block join with a space


def chunk_id(document: str, section: Sequence[str], occurrence: int, position: int, text: str) -> str:
    """`<document>#<16 hex>`: the hash of the section, its occurrence, the position in it and the text."""
    key = "\x1f".join([ID_VERSION, document, "\x1e".join(section), str(occurrence), str(position), text])
    return f"{document}#{hashlib.blake2b(key.encode('utf-8'), digest_size=8).hexdigest()}"


def _sentences(block: Block) -> list[str]:
    if block.kind != "text":
        return [block.text]
    from segtok.segmenter import split_single

    return [s.strip() for s in split_single(block.text) if s.strip()]


def _pieces(blocks: list[Block], max_tokens: int, counter) -> list[Piece]:
    units = [(sentence, block.page, i) for i, block in enumerate(blocks) for sentence in _sentences(block)]
    counts = counter.counts([u[0] for u in units])
    pieces = []
    for (text, page, block), n in zip(units, counts):
        if n <= max_tokens:
            pieces.append(Piece(text, n, page, block))
        else:
            pieces.extend(Piece(part, k, page, block) for part, k in _cut(text, max_tokens, counter))
    return pieces


def _cut(text: str, max_tokens: int, counter) -> list[tuple[str, int]]:
    """A too-long sentence cut at word boundaries into parts of at most max_tokens (by per-word counts)."""
    words = text.split()
    word_counts = counter.counts(words)
    parts, current, size = [], [], 0
    for word, n in zip(words, word_counts):
        if current and size + n > max_tokens:
            parts.append((" ".join(current), size))
            current, size = [], 0
        current.append(word)
        size += n
    if current:
        parts.append((" ".join(current), size))
    return parts


def _join(pieces: Sequence[Piece]) -> str:
    out = ""
    for i, piece in enumerate(pieces):
        if i:
            out += " " if piece.block == pieces[i - 1].block else "\n\n"
        out += piece.text
    return out


def _pack(pieces: list[Piece], max_tokens: int, overlap: int) -> list[list[Piece]]:
    chunks: list[list[Piece]] = []
    current: list[Piece] = []
    size = 0
    fresh = 0  # pieces in `current` that are not overlap from the chunk before
    for piece in pieces:
        if fresh and size + piece.tokens > max_tokens:
            chunks.append(current)
            carried: list[Piece] = []
            for previous in reversed(current):
                if sum(p.tokens for p in carried) + previous.tokens > overlap or len(carried) + 1 >= len(current):
                    break
                carried.insert(0, previous)
            while carried and sum(p.tokens for p in carried) + piece.tokens > max_tokens:
                carried.pop(0)
            current, size, fresh = carried, sum(p.tokens for p in carried), 0
        current.append(piece)
        size += piece.tokens
        fresh += 1
    if fresh:
        chunks.append(current)
    return chunks


def chunk_document(document: Document, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP,
                   counter=None) -> list[Record]:
    """A document's chunks as Records, in reading order."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens} and {overlap}")
    counter = counter or default_counter()
    records: list[Record] = []
    seen: dict[tuple[str, ...], int] = {}
    for section_index, (section, blocks) in enumerate(document.sections()):
        occurrence = seen.get(section, 0)
        seen[section] = occurrence + 1
        for position, chunk in enumerate(_pack(_pieces(blocks, max_tokens, counter), max_tokens, overlap)):
            text = _join(chunk)
            pages = sorted({p.page for p in chunk if p.page is not None})
            records.append(Record(
                id=chunk_id(document.name, section, occurrence, position, text),
                fields={"text": text},
                meta={
                    "document": document.name,
                    "title": document.title,
                    "format": document.format,
                    "section": " > ".join(section),
                    "section_path": list(section),
                    "section_index": section_index,
                    "page": pages[0] if pages else None,
                    "pages": pages,
                    "chunk_index": len(records),
                    "chunk_in_section": position,
                    "tokens": sum(p.tokens for p in chunk),
                },
            ))
    return records


def chunk_documents(documents: Sequence[Document], max_tokens: int = DEFAULT_MAX_TOKENS,
                    overlap: int = DEFAULT_OVERLAP, counter=None) -> list[Record]:
    """Every document's chunks, documents in the order given."""
    return [r for d in documents for r in chunk_document(d, max_tokens, overlap, counter)]
