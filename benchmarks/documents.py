"""Documents benchmark, ingestion part: PDF pages/s through synthloom vs pypdfium2 called directly.

The files: the bundled PDFs with a text layer (examples/documents/*.pdf,
15 pages in all; or the PDFs given with --pdf). Two arms do the same job on
the same files, alternating within each round:

- direct: what a user of the chosen parser would write: open each file
  with `pypdfium2.PdfDocument`, take every page's text
  (`get_textpage().get_text_range()`) and the outline (`get_toc()`), close;
- synthloom: `synthloom.sources.ingest(files)`: the same parser, plus
  finding the files, splitting each page at its headings into blocks with
  their section path and page, and the error handling.

Each arm reads all files `--repeat` times per round (the files are small:
one pass takes tens of milliseconds), the arms taking turns pass by pass
(so a burst of load from elsewhere hits both); pages/s is pages read / wall
time, and a round's ratio is synthloom's pages/s over direct's (pages per
CPU second is shown beside it: on a shared machine it is the steadier one). `--rounds` rounds
(default 3); the reported ratio is the median of the rounds' ratios.

The rule, written before the run: met if the median ratio is >= 0.9
(synthloom's ingestion costs at most ~10% over the bare parser).

A check that nothing is lost: the words synthloom keeps (block text plus
headings, which become section paths) are counted against the words of
the direct extraction.

    python benchmarks/documents.py [--rounds 3] [--repeat 20] [--pdf FILE ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.9


def direct(files: list[Path]) -> int:
    import pypdfium2 as pdfium

    pages = 0
    for file in files:
        pdf = pdfium.PdfDocument(str(file))
        try:
            texts = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
            list(pdf.get_toc())
        finally:
            pdf.close()
        pages += len(texts)
    return pages


def through_synthloom(files: list[Path]) -> int:
    from synthloom.sources import ingest

    found = ingest(files)
    if found.errors:
        raise SystemExit(f"ingestion failed: {found.errors[0]}")
    return sum(d.pages or 0 for d in found.documents)


def words_kept(files: list[Path]) -> tuple[int, int]:
    import pypdfium2 as pdfium

    from synthloom.sources import read_document

    raw = kept = 0
    for file in files:
        pdf = pdfium.PdfDocument(str(file))
        raw += sum(len(pdf[i].get_textpage().get_text_range().split()) for i in range(len(pdf)))
        pdf.close()
        document = read_document(file)
        headings = {h for b in document.blocks for h in b.section}
        kept += sum(len(b.text.split()) for b in document.blocks) + sum(len(h.split()) for h in headings)
    return raw, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pdf", type=Path, nargs="*", default=sorted((ROOT / "examples" / "documents").glob("*.pdf")))
    args = parser.parse_args()
    files = args.pdf
    arms = {"direct (pypdfium2)": direct, "synthloom ingest": through_synthloom}
    for arm in arms.values():  # warm up: imports, file cache
        arm(files)
    rows: list[tuple[int, str, float, float]] = []
    for round_no in range(1, args.rounds + 1):
        wall = dict.fromkeys(arms, 0.0)
        cpu = dict.fromkeys(arms, 0.0)
        pages = dict.fromkeys(arms, 0)
        for rep in range(args.repeat):  # the arms take turns pass by pass, first one, then the other
            for name in (list(arms) if rep % 2 == 0 else list(reversed(arms))):
                start, start_cpu = time.perf_counter(), time.process_time()
                pages[name] += arms[name](files)
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
        rows += [(round_no, name, pages[name] / wall[name], pages[name] / cpu[name]) for name in arms]
    print(f"files: {', '.join(f.name for f in files)}; {direct(files)} pages; {args.repeat} passes per round\n")
    print(f"{'round':>5}  {'arm':<20} {'pages/s':>9} {'pages/CPU s':>12}")
    for round_no, name, rate, cpu_rate in rows:
        print(f"{round_no:>5}  {name:<20} {rate:>9.1f} {cpu_rate:>12.1f}")
    ratios, cpu_ratios = [], []
    for round_no in range(1, args.rounds + 1):
        rates = {name: (rate, cpu_rate) for r, name, rate, cpu_rate in rows if r == round_no}
        ratios.append(rates["synthloom ingest"][0] / rates["direct (pypdfium2)"][0])
        cpu_ratios.append(rates["synthloom ingest"][1] / rates["direct (pypdfium2)"][1])
    ratio = statistics.median(ratios)
    raw, kept = words_kept(files)
    print(f"\nratio synthloom / direct per round: {', '.join(f'{r:.3f}' for r in ratios)}; median {ratio:.3f}")
    print(f"(by CPU time: {', '.join(f'{r:.3f}' for r in cpu_ratios)}; median {statistics.median(cpu_ratios):.3f})")
    print(f"goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}")
    print(f"words kept: {kept} of {raw} extracted by the parser ({kept / raw:.1%})")


if __name__ == "__main__":
    main()
