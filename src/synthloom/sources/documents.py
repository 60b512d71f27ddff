"""Documents in: files, folders and globs to `Document`s, each file's problem kept, never raised.

A `Document` is a file's text as `Block`s (a paragraph, a list item, a code
block, a table row, or a PDF page's text between two headings), each with
the path of headings it sits under and, for PDFs, its page. Chunking reads
only this shape, so every format is chunked the same way.

`ingest(paths)` reads everything it is given: a file, a folder (its files
of known formats, recursively; hidden files and files of other formats are
passed over) or a glob (`docs/**/*.pdf`). A file that cannot be read (an
encrypted or image-only PDF, a broken file) gives one `IngestError` naming
the file and what to do, and the others still go in.

Each document is named by its path relative to the folder (or the fixed
part of the glob) it was found under, or by its file name when given
directly: the name is part of every chunk id, so the same folder gives the
same ids on every machine.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence


@dataclass(frozen=True)
class Block:
    """A piece of a document's text and where it sits: its headings (top down) and page."""

    text: str
    section: tuple[str, ...] = ()
    page: int | None = None
    kind: str = "text"  # text, code or table: code and tables are kept whole, not split into sentences


@dataclass
class Document:
    path: Path
    name: str
    format: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    pages: int | None = None

    def sections(self) -> list[tuple[tuple[str, ...], list[Block]]]:
        """Runs of consecutive blocks under the same headings, in order."""
        runs: list[tuple[tuple[str, ...], list[Block]]] = []
        for block in self.blocks:
            if runs and runs[-1][0] == block.section:
                runs[-1][1].append(block)
            else:
                runs.append((block.section, [block]))
        return runs


class DocumentError(Exception):
    """A file that cannot be read, with what to do about it (without the file name)."""


@dataclass(frozen=True)
class IngestError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Ingested:
    documents: list[Document]
    errors: list[IngestError]


Reader = Callable[[Path, str], Document]

FORMATS = {
    ".pdf": "pdf",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "markdown", ".markdown": "markdown",
    ".docx": "docx",
    ".txt": "text", ".text": "text",
}


def _reader(fmt: str) -> Reader:
    """The reader of a format, imported when first needed (each needs its own parser package)."""
    if fmt == "pdf":
        from .read_pdf import read_pdf as reader
    elif fmt == "html":
        from .read_html import read_html as reader
    elif fmt == "markdown":
        from .read_markdown import read_markdown as reader
    elif fmt == "docx":
        from .read_docx import read_docx as reader
    else:
        from .read_text import read_text as reader
    return reader


def read_document(path: str | Path, name: str | None = None) -> Document:
    """One file to a Document; raises DocumentError (or the parser's own error) if it cannot be read."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DocumentError(f"unsupported format {path.suffix or '(no suffix)'!r}; expected one of {', '.join(sorted(FORMATS))}")
    try:
        reader = _reader(fmt)
    except ImportError as exc:
        raise DocumentError(f"reading {fmt} needs {exc.name or exc}: pip install 'synthloom[documents]'") from None
    return reader(path, name or path.name)


def find_files(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, str]], list[IngestError]]:
    """(file as found, name) of every file the paths point to, each once, and the paths that matched nothing."""
    found: dict[Path, tuple[Path, str]] = {}  # by resolved path
    errors = []
    for given in paths:
        text = str(given)
        if glob.has_magic(text):
            root = _fixed_part(text)
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            if not matches:
                errors.append(IngestError(text, "no file matches this pattern"))
            for match in matches:
                found.setdefault(match.resolve(), (match, _name(match, root)))
        elif Path(text).is_dir():
            root = Path(text)
            files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in FORMATS
                     and not any(part.startswith(".") for part in p.relative_to(root).parts)]
            if not files:
                errors.append(IngestError(text, f"no documents in this folder (looked for {', '.join(sorted(FORMATS))})"))
            for file in files:
                found.setdefault(file.resolve(), (file, _name(file, root)))
        elif Path(text).is_file():
            found.setdefault(Path(text).resolve(), (Path(text), Path(text).name))
        else:
            errors.append(IngestError(text, "no such file or folder"))
    return list(found.values()), errors


def _fixed_part(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _name(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def ingest(paths: Sequence[str | Path] | str | Path) -> Ingested:
    """Read every document the paths point to; what cannot be read becomes an IngestError."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files, errors = find_files(paths)
    documents = []
    for path, name in files:
        shown = str(path)
        try:
            document = read_document(path, name)
        except DocumentError as exc:
            errors.append(IngestError(shown, str(exc)))
            continue
        except Exception as exc:  # a parser's own error on a broken file: say so, go on with the rest
            fmt = FORMATS.get(path.suffix.lower(), "this format")
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            errors.append(IngestError(shown, f"cannot read this {fmt} file ({detail}); is it complete and really {fmt}?"))
            continue
        if not any(block.text.strip() for block in document.blocks):
            errors.append(IngestError(shown, "no text in this file"))
            continue
        documents.append(document)
    return Ingested(documents, errors)


class Headings:
    """The path of headings above the current point of a document, as a reader walks it."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, heading: str) -> None:
        heading = " ".join(heading.split())
        if heading:
            self._stack = [entry for entry in self._stack if entry[0] < level] + [(level, heading)]

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(heading for _, heading in self._stack)


def decode_text(data: bytes) -> str:
    """UTF-8 text (a byte-order mark allowed); a binary or differently encoded file is a DocumentError."""
    if b"\x00" in data[:8192]:
        raise DocumentError("binary content, not text: is the suffix right?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
