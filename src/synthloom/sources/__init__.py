"""Sources: documents in (PDF, HTML, Markdown, DOCX, plain text), chunked by structure, linked in a graph.

    found = ingest(["docs/", "papers/*.pdf"])        # Documents, and one IngestError per unreadable file
    chunks = chunk_documents(found.documents)        # Records with stable ids and structure in meta
    graph = build_graph(chunks)                      # keyphrase and embedding links
    pairs = draw_pairs(graph, 20, seed=0)            # linked chunks from different sections

The parsers come with `pip install 'synthloom[documents]'`; see docs/documents.md.
"""

from .chunking import chunk_document, chunk_documents, chunk_id
from .documents import Block, Document, DocumentError, Ingested, IngestError, find_files, ingest, read_document
from .graph import ChunkGraph, Link, build_graph, draw_pairs, draw_paths, keyphrases
from .to_parquet import IngestResult, ingest_to_parquet
from .tokens import default_counter

__all__ = [
    "Block", "ChunkGraph", "Document", "DocumentError", "IngestError", "IngestResult", "Ingested", "Link",
    "build_graph", "chunk_document", "chunk_documents", "chunk_id", "default_counter", "draw_pairs",
    "draw_paths", "find_files", "ingest", "ingest_to_parquet", "keyphrases", "read_document",
]
