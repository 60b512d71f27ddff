"""HTML pages through BeautifulSoup with the lxml parser.

The page's content is its `<main>` (or `<article>`, or `[role=main]`, or the
body) without scripts, styles, navigation, headers, footers and asides.
Headings h1-h6 make the section path; paragraphs, list items, quotes,
definitions, table rows and code blocks become blocks, and text outside
them (`<div>words</div>`) a paragraph of its own. The title is the
first h1, else the first heading, else the `<title>`.
"""

from __future__ import annotations

from pathlib import Path

from .documents import Block, Document, Headings

_DROP = ["script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form", "button"]
_CONTAINERS = {"div", "section", "article", "ul", "ol", "dl", "table", "hr", "details", "figure"}
_BLOCKS = {"p", "li", "pre", "blockquote", "dt", "dd", "tr", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6"}


def read_html(path: Path, name: str) -> Document:
    from bs4 import BeautifulSoup, NavigableString, Tag

    soup = BeautifulSoup(path.read_bytes(), "lxml")
    page_title = " ".join(soup.title.get_text().split()) if soup.title else ""
    for tag in soup(_DROP):
        tag.decompose()
    for tag in soup.select('[role="navigation"], [hidden], [aria-hidden="true"]'):
        tag.decompose()
    for br in soup("br"):  # text is joined without a separator (inline tags are inline): a break is a space
        br.replace_with("\n")
    root = soup.find("main") or soup.find("article") or soup.find(attrs={"role": "main"}) or soup.body or soup
    headings = Headings()
    blocks: list[Block] = []
    title = first_heading = ""
    loose: list[str] = []  # text outside any block element (`<div>words</div>`), kept as a paragraph

    def add(text: str, kind: str = "text") -> None:
        if text.strip():
            blocks.append(Block(text, headings.path or (title or page_title or path.stem,), None, kind))

    def flush_loose() -> None:
        add(" ".join(" ".join(loose).split()))
        loose.clear()

    for node in root.descendants:
        if type(node) is NavigableString:  # not a comment, doctype or CDATA
            if not _inside_block(node, root):
                loose.append(str(node))
            continue
        if not isinstance(node, Tag) or (node.name not in _BLOCKS and node.name not in _CONTAINERS):
            continue
        if node.name in _CONTAINERS:
            flush_loose()
            continue
        if _inside_block(node, root):
            continue  # its text is part of an enclosing block (a paragraph in a list item, a row in a quote)
        flush_loose()
        if node.name[0] == "h" and node.name[1:].isdigit():
            text = " ".join(node.get_text().split())
            headings.enter(int(node.name[1]), text)
            title = title or (text if node.name == "h1" else "")
            first_heading = first_heading or text
        elif node.name == "pre":
            add(node.get_text().strip("\n"), "code")
        elif node.name == "tr":
            add(" | ".join(" ".join(cell.get_text().split()) for cell in node.find_all(["th", "td"])), "table")
        else:
            add(" ".join(node.get_text().split()))
    flush_loose()
    return Document(path, name, "html", title or first_heading or page_title or path.stem, blocks)


def _inside_block(node, root) -> bool:
    for parent in node.parents:
        if parent is root:
            return False
        if parent.name in _BLOCKS:
            return True
    return False
