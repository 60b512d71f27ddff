"""Choosing the PDF parser: pages/s and text fidelity of pypdfium2, pypdf and pdfplumber on the bundled PDFs.

The bundled PDFs were rendered from Rust Book pages, so the true text is
known: each parser's text of a PDF (all pages, whitespace normalised) is
compared with the text of the page it was made from (the same blocks
scripts/make_example_documents.py rendered) by difflib's ratio (1.0 =
identical). pages/s is over `--rounds` passes of all files after one warm-up
pass, the parsers taking turns. A parser that is not installed is skipped.

    python benchmarks/pdf_parsers.py [--rounds 3] [--rust-docs DIR]
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_example_documents import RUST_DOCS, book_blocks  # noqa: E402

SOURCES = {"ownership.pdf": "ch04-01-what-is-ownership.html",
           "recoverable-errors.pdf": "ch09-02-recoverable-errors-with-result.html"}


def with_pypdfium2(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def with_pypdf(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(path).pages]


def with_pdfplumber(path: Path) -> list[str]:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


PARSERS = {"pypdfium2": with_pypdfium2, "pypdf": with_pypdf, "pdfplumber": with_pdfplumber}


def _norm(text: str) -> str:
    return " ".join(text.replace("\u2022", " ").split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rust-docs", type=Path, default=RUST_DOCS)
    args = parser.parse_args()
    files = [ROOT / "examples" / "documents" / name for name in SOURCES]
    parsers = {name: fn for name, fn in PARSERS.items() if importlib.util.find_spec(name) is not None}
    book = args.rust_docs / "rust" / "html" / "book"
    truth = {f: _norm(" ".join(t for _, t in book_blocks(book / SOURCES[f.name]))) for f in files} if book.exists() else {}
    elapsed = dict.fromkeys(parsers, 0.0)
    pages = dict.fromkeys(parsers, 0)
    for name, fn in parsers.items():
        fn(files[0])  # warm up
    for round_no in range(args.rounds):
        for name in (list(parsers) if round_no % 2 == 0 else list(reversed(parsers))):
            start = time.perf_counter()
            pages[name] += sum(len(parsers[name](f)) for f in files)
            elapsed[name] += time.perf_counter() - start
    print(f"{'parser':<12} {'pages/s':>9}  text similarity to the source ({', '.join(SOURCES)})")
    for name, fn in parsers.items():
        if truth:
            fidelity = ", ".join(f"{difflib.SequenceMatcher(None, _norm(' '.join(fn(f))), truth[f], autojunk=False).ratio():.3f}"
                                 for f in files)
        else:
            fidelity = "(the Rust docs are not on this machine)"
        print(f"{name:<12} {pages[name] / elapsed[name]:>9.1f}  {fidelity}")


if __name__ == "__main__":
    main()
