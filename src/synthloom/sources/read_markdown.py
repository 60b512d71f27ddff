"""Markdown files through markdown-it-py (CommonMark, with tables).

Headings (ATX `#` and setext underlines) make the section path;
paragraphs, list items, quotes and table rows become blocks with their
inline markup reduced to plain text (a link keeps its words, code its
text); fenced and indented code stays whole. The title is the first
level-1 heading, else the file name.
"""

from __future__ import annotations

from pathlib import Path

from .documents import Block, Document, Headings, decode_text


def _plain(token) -> str:
    """The plain text of an inline token: words of links, emphasis and code; images by their alt text."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content if child.type != "html_inline" else "")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split())


def read_markdown(path: Path, name: str) -> Document:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(decode_text(path.read_bytes()))
    headings = Headings()
    blocks: list[Block] = []
    title = ""
    row: list[str] | None = None
    heading_level = 0
    for token in tokens:
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = 0
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            if any(row):
                blocks.append(Block(" | ".join(row), headings.path or (title or path.stem,), None, "table"))
            row = None
        elif token.type == "inline":
            text = _plain(token)
            if heading_level:
                headings.enter(heading_level, text)
                title = title or (text if heading_level == 1 else "")
            elif row is not None:
                row.append(text)
            elif text:
                blocks.append(Block(text, headings.path or (title or path.stem,)))
        elif token.type in ("fence", "code_block") and token.content.strip():
            blocks.append(Block(token.content.rstrip("\n"), headings.path or (title or path.stem,), None, "code"))
    return Document(path, name, "markdown", title or path.stem, blocks)
