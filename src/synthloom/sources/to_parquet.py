"""`synthloom ingest`: documents to a Parquet file of chunks, and the files that could not be read.

Writes `<out>/chunks.parquet` (one row per chunk: `id`, `text`, and the
structure as the JSON `meta` column, read back by `read_records`) and
`<out>/ingest.json` (the documents with their chunk counts, the settings,
and one line per file that could not be read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .._json import dumps
from ..records import Record, atomic_write_bytes, write_records
from .chunking import chunk_documents
from .documents import IngestError, ingest
from .tokens import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, default_counter


@dataclass
class IngestResult:
    chunks: list[Record]
    documents: list[dict]
    errors: list[IngestError]
    path: Path | None


def ingest_to_parquet(paths: Sequence[str | Path], out: str | Path, max_tokens: int = DEFAULT_MAX_TOKENS,
                      overlap: int = DEFAULT_OVERLAP) -> IngestResult:
    """Read, chunk and write; nothing is written if no document could be read."""
    counter = default_counter()
    found = ingest(paths)
    chunks = chunk_documents(found.documents, max_tokens, overlap, counter)
    documents = [
        {"document": d.name, "path": str(d.path), "format": d.format, "title": d.title, "pages": d.pages,
         "chunks": sum(1 for c in chunks if c.meta["document"] == d.name)}
        for d in found.documents
    ]
    if not chunks:
        return IngestResult(chunks, documents, found.errors, None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_records(out / "chunks.parquet", chunks, prompts=False)
    summary = {
        "settings": {"max_tokens": max_tokens, "overlap": overlap, "tokens": counter.name},
        "documents": documents,
        "errors": [{"path": e.path, "message": e.message} for e in found.errors],
    }
    atomic_write_bytes(out / "ingest.json", dumps(summary))
    return IngestResult(chunks, documents, found.errors, path)
