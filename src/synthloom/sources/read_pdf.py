"""PDF files through pypdfium2 (PDFium, the engine of Chromium's PDF viewer).

Chosen by measurement on the bundled PDFs (benchmarks/pdf_parsers.py, see
docs/documents.md): pypdfium2 and pypdf both give the source text back
exactly, pypdfium2 about four times faster; pdfplumber is a hundred times
slower. It is Apache-2.0/BSD licensed with binary wheels; PyMuPDF is AGPL
and was not considered.

Text: every character of each page's text layer (`get_text_range`; the
bounded variant drops text that runs past the page's edge, such as a long
code line, which the measurement caught).

Structure: the PDF's outline (bookmarks) gives the headings; each heading
is looked for as a line on its page, and the text from there to the next
heading is one block with that heading's path and page (a heading not
found as a line on its page starts its section on the next page, so one
odd heading does not hold up the rest). Without an outline
a page is a block under the document's title. A PDF with no text on any
page has no text layer (a scan): it needs OCR first.
"""

from __future__ import annotations

from pathlib import Path

from .documents import Block, Document, DocumentError


_NO_TITLE = {"untitled", "(unspecified)", "(anonymous)", "none"}  # what PDF writers put when there is none


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _outline(pdf) -> list[tuple[int, str, int]]:
    """(level, title, page index) of the PDF's bookmarks, in order; those without a page left out."""
    items = []
    for item in pdf.get_toc():
        dest = item.get_dest()
        index = dest.get_index() if dest is not None else None
        title = " ".join((item.get_title() or "").split())
        if index is not None and title:
            items.append((item.level, title, index))
    return items


def read_pdf(path: Path, name: str) -> Document:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise DocumentError("encrypted PDF (it needs a password): save a copy without the password and ingest that") from None
        raise DocumentError(f"broken PDF ({message.removeprefix('Failed to load document ').strip('().')}): "
                            "re-download or re-export it") from None
    try:
        pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
        outline = _outline(pdf)
        title = " ".join((pdf.get_metadata_dict().get("Title") or "").split())
    finally:
        pdf.close()
    if not any(page.strip() for page in pages):
        raise DocumentError(f"no text layer in any of its {len(pages)} pages (a scan or image-only PDF): "
                            "it needs OCR first (e.g. ocrmypdf), then ingest the result")
    if title.casefold() in _NO_TITLE:
        title = ""
    title = title or (outline[0][1] if outline else path.stem)
    return Document(path, name, "pdf", title, _blocks(pages, outline, title), len(pages))


def _blocks(pages: list[str], outline: list[tuple[int, str, int]], title: str) -> list[Block]:
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []  # (level, heading) from the top down
    pending = [(level, heading, index, _norm(heading)) for level, heading, index in outline]
    section: tuple[str, ...] = (title,)  # text before the first heading sits under the title
    rest = ""  # what is left of a heading that wraps onto the next lines
    for number, text in enumerate(pages, start=1):
        current: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if rest:
                normalised = _norm(line)
                if rest.startswith(normalised):
                    rest = rest[len(normalised):].strip()
                    continue
                rest = ""
            # a cheap first-letter test before comparing the whole line with the next heading
            if pending and pending[0][2] < number and line[0].casefold() == pending[0][3][:1] \
                    and _heading_starts(_norm(line), pending[0][3]):
                level, heading, _, target = pending.pop(0)
                rest = target[len(_norm(line)):].strip()
                _flush(blocks, current, section, number)
                current = []
                stack = [entry for entry in stack if entry[0] < level] + [(level, heading)]
                section = tuple(h for _, h in stack)
                continue
            current.append(line)
        _flush(blocks, current, section, number)
        while pending and pending[0][2] < number:  # named by the outline on this page but not found as a line:
            level, heading, _, _ = pending.pop(0)  # its section starts on the next page
            stack = [entry for entry in stack if entry[0] < level] + [(level, heading)]
            section = tuple(h for _, h in stack)
    return blocks


def _heading_starts(line: str, heading: str) -> bool:
    """Is this (normalised) line the heading, or the first line of a heading that wraps?"""
    return line == heading or (len(line) >= 12 and heading.startswith(line))


def _flush(blocks: list[Block], lines: list[str], section: tuple[str, ...], page: int) -> None:
    text = " ".join(lines).strip()
    if text:
        blocks.append(Block(text, section, page))
