"""Word documents (.docx) through python-docx.

Paragraphs styled Title or "Heading N" make the section path; other
paragraphs become blocks, and each table row one block ("cell | cell").
The title is the document's core property, else its Title paragraph or
first level-1 heading. An old binary .doc or a password-protected file is
not a DOCX package: the error says to save it again as .docx.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .documents import Block, Document, DocumentError, Headings


def _heading_level(style_name: str) -> int:
    if style_name == "Title":
        return 1
    if style_name.startswith("Heading ") and style_name[8:].isdigit():
        return int(style_name[8:])
    return 0


def read_docx(path: Path, name: str) -> Document:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(f"not a DOCX package ({type(exc).__name__}): a broken file, an old .doc or a password-protected "
                            "document; save it again as .docx without a password") from None
    headings = Headings()
    blocks: list[Block] = []
    title = " ".join((document.core_properties.title or "").split())
    first_heading = ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = list(dict.fromkeys(" ".join(cell.text.split()) for cell in row.cells))  # merged cells repeat
                if any(cells):
                    blocks.append(Block(" | ".join(cells), headings.path or (title or path.stem,), None, "table"))
            continue
        text = " ".join(item.text.split())
        if not text:
            continue
        level = _heading_level(item.style.name if item.style is not None else "")
        if level:
            headings.enter(level, text)
            first_heading = first_heading or (text if level == 1 else "")
        else:
            blocks.append(Block(text, headings.path or (title or first_heading or path.stem,)))
    return Document(path, name, "docx", title or first_heading or path.stem, blocks)
