"""Make examples/documents/ from documentation that ships with the Rust toolchain (MIT OR Apache-2.0).

The bundled documents are real texts in every format ingestion reads: a
Rust Book page as it ships (HTML), Clippy's README (Markdown), and Rust Book
chapters rendered to PDF with reportlab (with an outline of their headings),
to DOCX with python-docx and to plain text. Two problem files test the
errors: an encrypted PDF (pypdf, AES-256) and an image-only PDF (a page
drawn as a picture, no text layer).

    python scripts/make_example_documents.py [--rust-docs DIR] [--out examples/documents]

Needs beautifulsoup4, lxml, reportlab, python-docx, pypdf, cryptography and Pillow.
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

from bs4 import BeautifulSoup

RUST_DOCS = Path("/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc")
ROOT = Path(__file__).resolve().parents[1]


def book_blocks(html_file: Path) -> list[tuple[str, str]]:
    """(kind, text) of a Rust Book page's content: h1/h2/h3, p, li, code."""
    soup = BeautifulSoup(html_file.read_text(encoding="utf-8"), "lxml")
    main = soup.find("main")
    blocks = []
    for node in main.find_all(["h1", "h2", "h3", "h4", "p", "li", "pre"]):
        if node.name == "p" and node.find_parent("li"):
            continue
        if node.name == "pre":
            for hidden in node.select(".boring"):
                hidden.decompose()
            text = node.get_text().strip("\n")
        else:
            text = " ".join(node.get_text().split())
        if text:
            blocks.append((node.name, text))
    top = min(int(kind[1]) for kind, _ in blocks if kind[0] == "h")  # the page title's level becomes h1
    return [(f"h{int(kind[1]) - top + 1}" if kind[0] == "h" else kind, text) for kind, text in blocks]


def write_pdf(blocks, out: Path, title: str) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, Preformatted, SimpleDocTemplate
    from xml.sax.saxutils import escape

    styles = getSampleStyleSheet()
    style = {"h1": styles["Heading1"], "h2": styles["Heading2"], "h3": styles["Heading3"], "h4": styles["Heading4"],
             "p": styles["BodyText"], "li": styles["BodyText"], "pre": styles["Code"]}

    class Outlined(SimpleDocTemplate):
        def afterFlowable(self, flowable):  # noqa: N802 (reportlab's name)
            level = getattr(flowable, "outline_level", None)
            if level is not None:
                key = f"h{id(flowable)}"
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level)

    story = []
    for kind, text in blocks:
        if kind == "pre":
            story.append(Preformatted(text, style["pre"]))
            continue
        para = Paragraph(("&bull; " if kind == "li" else "") + escape(text), style[kind])
        if kind[0] == "h":
            para.outline_level = int(kind[1]) - 1
        story.append(para)
    doc = Outlined(str(out), pagesize=A4, title=title, author="The Rust Project Developers",
                   invariant=1)
    doc.build(story)


def write_docx(blocks, out: Path, title: str) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = "The Rust Project Developers"
    for kind, text in blocks:
        if kind[0] == "h":
            document.add_heading(text, level=int(kind[1]))
        elif kind == "li":
            document.add_paragraph(text, style="List Bullet")
        else:
            paragraph = document.add_paragraph(text)
            if kind == "pre":
                for run in paragraph.runs:
                    run.font.name = "Courier New"
    document.save(out)


def write_text(blocks, out: Path) -> None:
    lines = []
    for kind, text in blocks:
        if kind[0] == "h":
            lines += [text, "=" * len(text) if kind == "h1" else "-" * len(text)]
        else:
            lines.append(("- " if kind == "li" else "") + text)
        lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")


def write_encrypted(source_pdf: Path, out: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(source_pdf))
    writer.encrypt(user_password="rust", owner_password="rust-owner", algorithm="AES-256")
    with out.open("wb") as handle:
        writer.write(handle)


def write_image_only(blocks, out: Path) -> None:
    """One page drawn as a grey picture of text: what a scanner makes; no text layer."""
    from PIL import Image, ImageDraw
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    image = Image.new("L", (827, 1169), 255)
    draw = ImageDraw.Draw(image)
    y = 60
    for _, text in blocks[:12]:
        for start in range(0, len(text), 90):
            draw.text((60, y), text[start:start + 90], fill=0)
            y += 16
        y += 10
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    pdf = canvas.Canvas(str(out), pagesize=A4, invariant=1)
    pdf.drawImage(ImageReader(io.BytesIO(buffer.getvalue())), 0, 0, width=A4[0], height=A4[1])
    pdf.showPage()
    pdf.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rust-docs", type=Path, default=RUST_DOCS)
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "documents")
    args = parser.parse_args()
    book = args.rust_docs / "rust" / "html" / "book"
    out = args.out
    (out / "problems").mkdir(parents=True, exist_ok=True)

    shutil.copyfile(book / "ch08-01-vectors.html", out / "vectors.html")
    shutil.copyfile(args.rust_docs / "clippy" / "README.md", out / "clippy.md")
    shutil.copyfile(args.rust_docs / "clippy" / "LICENSE-MIT", out / "LICENSE-MIT")
    ownership = book_blocks(book / "ch04-01-what-is-ownership.html")
    write_pdf(ownership, out / "ownership.pdf", "What Is Ownership?")
    errors = book_blocks(book / "ch09-02-recoverable-errors-with-result.html")
    write_pdf(errors, out / "recoverable-errors.pdf", "Recoverable Errors with Result")
    write_docx(book_blocks(book / "ch08-03-hash-maps.html"), out / "hash-maps.docx", "Storing Keys with Associated Values in Hash Maps")
    write_text(book_blocks(book / "ch03-05-control-flow.html"), out / "control-flow.txt")

    slices = book_blocks(book / "ch04-03-slices.html")
    write_pdf(slices[:20], out / "problems" / "_plain.pdf", "The Slice Type")
    write_encrypted(out / "problems" / "_plain.pdf", out / "problems" / "encrypted.pdf")
    (out / "problems" / "_plain.pdf").unlink()
    write_image_only(slices, out / "problems" / "scanned.pdf")
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>8}  {path.relative_to(out)}")


if __name__ == "__main__":
    main()
