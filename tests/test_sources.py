"""Documents in: every format read from real files with its structure; unreadable files named, the rest still in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("bs4")
pytest.importorskip("docx")

from synthloom.cli import main  # noqa: E402
from synthloom.records import read_records  # noqa: E402
from synthloom.sources import DocumentError, ingest, read_document  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "examples" / "documents"


def _sections(document) -> list[tuple[str, ...]]:
    return [section for section, _ in document.sections()]


def _text(document) -> str:
    return "\n".join(block.text for block in document.blocks)


def test_the_bundled_folder_goes_in_and_its_two_problem_files_are_named():
    found = ingest([DOCS])
    assert sorted(d.name for d in found.documents) == [
        "clippy.md", "control-flow.txt", "hash-maps.docx", "ownership.pdf", "recoverable-errors.pdf", "vectors.html",
    ]
    assert sorted(d.format for d in found.documents) == ["docx", "html", "markdown", "pdf", "pdf", "text"]
    errors = {Path(e.path).name: e.message for e in found.errors}
    assert set(errors) == {"encrypted.pdf", "scanned.pdf"}
    assert "password" in errors["encrypted.pdf"]
    assert "needs OCR" in errors["scanned.pdf"]
    assert all("\n" not in str(e) and "problems/" in e.path for e in found.errors)


def test_a_real_pdf_keeps_its_headings_and_page_numbers():
    import pypdfium2 as pdfium

    document = read_document(DOCS / "ownership.pdf")
    assert (document.format, document.title, document.pages) == ("pdf", "What Is Ownership?", 8)
    sections = _sections(document)
    assert ("What Is Ownership?", "Ownership Rules") in sections
    assert ("What Is Ownership?", "Memory and Allocation") in sections
    # every block's page is the page whose text layer holds the block's first words
    pdf = pdfium.PdfDocument(str(DOCS / "ownership.pdf"))
    pages = [" ".join(pdf[i].get_textpage().get_text_range().split()) for i in range(len(pdf))]
    pdf.close()
    for block in document.blocks:
        assert " ".join(block.text.split()[:6]) in pages[block.page - 1]
    rules = next(b for b in document.blocks if b.section[-1] == "Ownership Rules")
    assert rules.text.startswith("First, let’s take a look at the ownership rules.")
    assert "Ownership Rules" not in rules.text  # the heading is structure, not body text


def test_a_real_html_page_keeps_its_content_without_the_page_chrome():
    document = read_document(DOCS / "vectors.html")
    assert document.title == "Storing Lists of Values with Vectors"
    assert ("Storing Lists of Values with Vectors", "Reading Elements of Vectors") in _sections(document)
    text = _text(document)
    assert "Hello, Cargo!" not in text  # the book's table of contents is navigation, left out
    assert "function" not in document.blocks[0].text or "Vec<T>" in document.blocks[0].text
    code = [b for b in document.blocks if b.kind == "code"]
    assert code and any("Vec::new()" in b.text for b in code)
    assert all("\n" in b.text or len(b.text) < 200 for b in code)  # code blocks keep their lines


def test_markdown_headings_code_tables_and_links(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(
        "# Guide\n\nIntro with a [link text](https://example.org) and `code`.\n\n"
        "## Install\n\nRun the installer.\n\n```sh\npip install thing\nthing --help\n```\n\n"
        "### On Windows\n\nUse the **wheel**.\n\n## Table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        encoding="utf-8",
    )
    document = read_document(path)
    assert document.title == "Guide"
    assert [(b.section, b.kind, b.text) for b in document.blocks] == [
        (("Guide",), "text", "Intro with a link text and code."),
        (("Guide", "Install"), "text", "Run the installer."),
        (("Guide", "Install"), "code", "pip install thing\nthing --help"),
        (("Guide", "Install", "On Windows"), "text", "Use the wheel."),
        (("Guide", "Table"), "table", "a | b"),
        (("Guide", "Table"), "table", "1 | 2"),
    ]
    clippy = read_document(DOCS / "clippy.md")
    assert ("Clippy", "Usage", "As a cargo subcommand (cargo clippy)", "Step 1: Install Rustup") in _sections(clippy)


def test_docx_headings_and_tables(tmp_path):
    import docx

    document = read_document(DOCS / "hash-maps.docx")
    assert document.title == "Storing Keys with Associated Values in Hash Maps"
    assert any(s[-1] == "Accessing Values in a Hash Map" for s in _sections(document))

    made = docx.Document()
    made.add_heading("Report", level=1)
    made.add_paragraph("Opening words.")
    made.add_heading("Figures", level=2)
    table = made.add_table(rows=2, cols=2)
    for r, row in enumerate([("year", "sales"), ("2024", "12")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    made.save(tmp_path / "report.docx")
    report = read_document(tmp_path / "report.docx")
    assert [(b.section, b.text) for b in report.blocks] == [
        (("Report",), "Opening words."), (("Report", "Figures"), "year | sales"), (("Report", "Figures"), "2024 | 12"),
    ]


def test_plain_text_paragraphs_and_underlined_headings(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Notes\n=====\n\nFirst paragraph\nwrapped here.\n\nPart two\n--------\nSecond one.\n", encoding="utf-8")
    document = read_document(path)
    assert document.title == "Notes"
    assert [(b.section, b.text) for b in document.blocks] == [
        (("Notes",), "First paragraph wrapped here."), (("Notes", "Part two"), "Second one."),
    ]
    assert read_document(DOCS / "control-flow.txt").title == "Control Flow"


def test_broken_files_get_one_line_each_and_the_rest_of_the_folder_goes_in(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DOCS / "clippy.md", folder / "sub" / "good.md")
    (folder / "cut.pdf").write_bytes((DOCS / "ownership.pdf").read_bytes()[:3000])  # a download cut short
    (folder / "fake.docx").write_bytes(b"this is not a zip file")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (folder / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    (folder / ".hidden.md").write_text("# skipped")
    (folder / "data.csv").write_text("a,b\n")  # not a document format: passed over in a folder
    found = ingest([folder])
    assert [d.name for d in found.documents] == ["sub/good.md"]
    errors = {Path(e.path).name: e.message for e in found.errors}
    assert set(errors) == {"cut.pdf", "fake.docx", "binary.txt", "latin1.md"}
    assert "broken PDF" in errors["cut.pdf"]
    assert "not a DOCX package" in errors["fake.docx"] and "save it again as .docx" in errors["fake.docx"]
    assert "binary content" in errors["binary.txt"]
    assert "not UTF-8" in errors["latin1.md"]
    for error in found.errors:
        assert str(error).startswith(str(folder)) and "\n" not in str(error)


def test_files_globs_and_missing_paths(tmp_path):
    found = ingest([str(DOCS / "*.pdf"), DOCS / "vectors.html", tmp_path / "missing.md", str(tmp_path / "*.md")])
    assert [d.name for d in found.documents] == ["ownership.pdf", "recoverable-errors.pdf", "vectors.html"]
    assert sorted(e.message for e in found.errors) == ["no file matches this pattern", "no such file or folder"]
    (tmp_path / "slides.pptx").write_bytes(b"x")
    with pytest.raises(DocumentError, match="unsupported format '.pptx'"):
        read_document(tmp_path / "slides.pptx")
    assert "unsupported format" in ingest([tmp_path / "slides.pptx"]).errors[0].message


def test_the_ingest_command_writes_chunks_and_prints_the_errors(tmp_path, capsys):
    main(["ingest", str(DOCS), "--out", str(tmp_path / "out")])  # returns: some files could not be read, the rest went in
    captured = capsys.readouterr()
    assert "6 documents" in captured.out and "2 files could not be read" in captured.out
    assert captured.err.count("\n") == 2 and "encrypted.pdf" in captured.err and "needs OCR" in captured.err
    chunks = read_records(tmp_path / "out" / "chunks.parquet")
    assert {c.meta["document"] for c in chunks} == {
        "clippy.md", "control-flow.txt", "hash-maps.docx", "ownership.pdf", "recoverable-errors.pdf", "vectors.html",
    }
    assert len({c.id for c in chunks}) == len(chunks)
    pdf_chunks = [c for c in chunks if c.meta["document"] == "ownership.pdf"]
    assert {c.meta["page"] for c in pdf_chunks} >= {1, 2}
    assert set().union(*(c.meta["pages"] for c in pdf_chunks)) == set(range(1, 9))

    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", str(DOCS / "problems"), "--out", str(tmp_path / "none")])
    assert exit_info.value.code == 2
    assert "no document could be read" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_a_pdf_without_an_outline_and_a_heading_that_wraps(tmp_path):
    pytest.importorskip("reportlab")
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    plain = canvas.Canvas(str(tmp_path / "plain.pdf"), pagesize=A4)
    plain.setTitle("Field notes")
    for page, words in enumerate(["Birds sing at dawn.", "Frogs call at night."], start=1):
        plain.drawString(72, 700, words)
        plain.showPage()
    plain.save()
    document = read_document(tmp_path / "plain.pdf")
    assert [(b.section, b.page, b.text) for b in document.blocks] == [
        (("Field notes",), 1, "Birds sing at dawn."), (("Field notes",), 2, "Frogs call at night."),
    ]

    wrapped = canvas.Canvas(str(tmp_path / "wrapped.pdf"), pagesize=A4)
    wrapped.drawString(72, 760, "Intro text before any heading.")
    wrapped.bookmarkPage("h1")
    wrapped.addOutlineEntry("A rather long heading that the layout wrapped onto two lines", "h1", level=0)
    wrapped.drawString(72, 700, "A rather long heading that the")
    wrapped.drawString(72, 686, "layout wrapped onto two lines")
    wrapped.drawString(72, 650, "Body of the section.")
    wrapped.showPage()
    wrapped.save()
    document = read_document(tmp_path / "wrapped.pdf")
    heading = "A rather long heading that the layout wrapped onto two lines"
    assert document.title == heading  # no title in the metadata: the first outline entry
    assert [(b.section, b.text) for b in document.blocks] == [
        ((heading,), "Intro text before any heading."), ((heading,), "Body of the section."),
    ]


def test_html_text_outside_block_elements_and_tables(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Shop - Example</title><script>var x = 1;</script></head><body>"
        "<nav>Home | About</nav><div>Loose words in a div.</div><h2>Prices</h2>"
        "<table><tr><th>item</th><th>price</th></tr><tr><td>tea</td><td>3</td></tr></table>"
        "<div>More <b>loose</b> text<!-- a comment --></div><footer>Copyright</footer></body></html>",
        encoding="utf-8",
    )
    document = read_document(tmp_path / "page.html")
    assert document.title == "Prices"
    assert [(b.section, b.kind, b.text) for b in document.blocks] == [
        (("Shop - Example",), "text", "Loose words in a div."),
        (("Prices",), "table", "item | price"),
        (("Prices",), "table", "tea | 3"),
        (("Prices",), "text", "More loose text"),
    ]


def test_an_outline_heading_not_found_on_its_page_does_not_hold_up_the_next(tmp_path):
    pytest.importorskip("reportlab")
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(tmp_path / "odd.pdf"), pagesize=A4)
    pdf.setTitle("Odd outline")
    pdf.bookmarkPage("one")
    pdf.addOutlineEntry("Chapter One", "one", level=0)
    pdf.drawString(72, 700, "1. CHAPTER ONE (as printed)")  # the outline's text is not a line of the page
    pdf.drawString(72, 680, "Text of chapter one.")
    pdf.showPage()
    pdf.drawString(72, 700, "More of chapter one.")
    pdf.bookmarkPage("two")
    pdf.addOutlineEntry("Chapter Two", "two", level=0)
    pdf.drawString(72, 660, "Chapter Two")
    pdf.drawString(72, 640, "Text of chapter two.")
    pdf.showPage()
    pdf.save()
    document = read_document(tmp_path / "odd.pdf")
    assert [(b.section, b.page, b.text) for b in document.blocks] == [
        (("Odd outline",), 1, "1. CHAPTER ONE (as printed) Text of chapter one."),
        (("Chapter One",), 2, "More of chapter one."),
        (("Chapter Two",), 2, "Text of chapter two."),
    ]
