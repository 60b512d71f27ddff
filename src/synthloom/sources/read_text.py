"""Plain text files: paragraphs between blank lines, and underlined headings.

Plain text has no markup, but many text documents (READMEs, RFC-like
notes) underline their headings: a line followed by a line of only `=`
(a top heading) or `-` (the next level), at least three long. Those make
the section path; every other run of non-blank lines is a paragraph. The
title is the first heading, else the file name.
"""

from __future__ import annotations

import re
from pathlib import Path

from .documents import Block, Document, Headings, decode_text

_UNDERLINE = re.compile(r"^(=+|-+)\s*$")


def read_text(path: Path, name: str) -> Document:
    lines = decode_text(path.read_bytes()).splitlines()
    headings = Headings()
    blocks: list[Block] = []
    title = ""
    paragraph: list[str] = []

    def flush() -> None:
        text = " ".join(" ".join(paragraph).split())
        if text:
            blocks.append(Block(text, headings.path or (title or path.stem,)))
        paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i].strip()
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line and not paragraph and len(underline) >= 3 and _UNDERLINE.match(underline):
            level = 1 if underline[0] == "=" else 2
            headings.enter(level, line)
            title = title or line
            i += 2
            continue
        if line:
            paragraph.append(line)
        else:
            flush()
        i += 1
    flush()
    return Document(path, name, "text", title or path.stem, blocks)
