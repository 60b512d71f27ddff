"""The report, the dataset card and `synthloom evaluate`, from a whole run; the report in a real browser."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
import yaml

import synthloom
from synthloom.report.plots import bar_chart, heatmap, histogram, interval_chart, line_chart, scatter

from conftest import run_cli

CHROMIUM = Path("/usr/bin/chromium")
JUDGE = json.dumps({"fluent": "yes", "on_task": "yes", "best_label": "apples", "factual": "yes"})
RECIPE = f"""\
name: report-check
model: {{backend: fake}}
task:
  description: short notes about fruit and boats
  labels: {{apples: about apples, boats: about boats}}
conditions:
  topic: [morning, evening, weekend]
  tone: [calm, loud]
generation: {{records: 48, seed: 1}}
curation:
  - stage: exact_dedup
  - stage: length_filter
    min_chars: 5
evaluation:
  - stage: diversity
  - stage: fidelity
    reference: {{path: real.jsonl}}
    k: 3
  - stage: downstream
    test: {{path: real.jsonl, split: {{test_fraction: 0.5}}}}
    train: {{path: real.jsonl, split: {{test_fraction: 0.5, part: train}}}}
    trainer: tfidf_linear
    settings: [synthetic, real, few_real_plus_synthetic, learning_curve]
    few_per_class: 3
    bootstrap: 100
  - stage: faithfulness
    judge: {{backend: fake, responses: ['{JUDGE}']}}
    sample: 10
"""


def real_rows(n: int = 60) -> str:
    words = {"apples": "apple orchard cider pie crisp red green harvest", "boats": "boat sail harbour mast anchor tide deck crew"}
    lines = []
    for i in range(n):
        label = "apples" if i % 2 else "boats"
        w = words[label].split()
        lines.append(json.dumps({"text": f"the {w[i % 8]} and the {w[(i * 3) % 8]} near the {w[(i * 5) % 8]} today", "label": label}))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    (base / "real.jsonl").write_text(real_rows())
    (base / "recipe.yaml").write_text(RECIPE)
    out = base / "run"
    out.mkdir()
    db = sqlite3.connect(out / "reviews.sqlite")
    db.execute("CREATE TABLE reviews (record_id TEXT, criterion TEXT, verdict TEXT)")
    db.executemany("INSERT INTO reviews VALUES (?, ?, ?)", [(f"report-check-{i:06d}", "label_correct", "yes" if i % 3 else "no") for i in range(12)])
    db.commit()
    db.close()
    synthloom.run(base / "recipe.yaml", out, progress=False)
    return out


def test_charts_are_svg_with_one_mark_per_value():
    assert bar_chart([("a", 3), ("b", 1)]).count("<rect") == 2
    assert histogram({"synthetic": [1, 2, 3], "real": [2, 3, 4]}, bins=4).count("<rect") == 2 * 4 + 2  # bars + legend
    assert scatter({"synthetic": [[0, 0, "a"], [1, 1, "b"]], "real": [[0.5, 0.5, None]]}).count("<circle") == 3
    grid = heatmap(["x", "y"], ["p", "q", "r"], [[1, 0, 2], [0, 0, 3]])
    assert grid.count("<rect") == 6 and grid.count('stroke="#E45756"') == 3  # empty cells outlined
    assert line_chart({"f1": [(10, 0.5, 0.4, 0.6), (20, 0.7, 0.6, 0.8)]}).count("<circle") == 2
    assert interval_chart([("synthetic", 0.8, 0.7, 0.9)]).count("<circle") == 1
    assert bar_chart([]) == histogram({}) == scatter({}) == ""


def test_run_directory_has_metrics_plot_data_report_and_card(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"diversity", "fidelity", "downstream", "faithfulness"}
    diversity = metrics["diversity"]
    assert {"distinct_2", "entropy_2", "self_bleu", "compression_ratio", "mean_pairwise_cosine", "vendi_score", "by_label", "coverage"} <= set(diversity)
    assert diversity["coverage"]["combinations"] == 6
    assert 0 <= metrics["fidelity"]["two_sample_auc"] <= 1
    downstream = metrics["downstream"]
    assert list(downstream["settings"]) == ["majority", "few_real", "synthetic", "few_real_plus_synthetic", "real"]
    assert downstream["headline"] == "few_real_plus_synthetic"
    assert downstream["learning_curve"] and "by_condition" in downstream["errors"]
    faith = metrics["faithfulness"]
    assert faith["sampled"] == 10 and faith["judged"] == 10
    assert faith["human"]["faithful"]["n"] == 12 and "label_correct" in faith["agreement"]
    plots = json.loads((run_dir / "plots.json").read_text())
    assert len(plots["lengths"]["real"]) == 60  # the fidelity reference: the first real data a stage loaded
    assert plots["map"]["synthetic"] and plots["map"]["real"]

    card = (run_dir / "README.md").read_text()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["task_categories"] == ["text-classification"] and "synthetic" in meta["tags"]
    assert meta["configs"][0]["data_files"][0]["path"] == "curated.parquet"
    assert "## How it was made" in card and "| exact_dedup |" in card and "| **few real + synthetic** |" in card

    html = (run_dir / "report.html").read_text()
    for anchor in ['id="labels"', 'id="lengths"', 'id="map"', 'id="coverage"', 'id="funnel"', 'id="downstream"', 'id="records"']:
        assert anchor in html, anchor
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    (run_dir / "report.html").unlink()
    (run_dir / "README.md").unlink()
    done = run_cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert (run_dir / "report.html").read_text().count("<svg") == html.count("<svg")
    assert (run_dir / "README.md").exists()


def test_evaluate_any_file_from_the_command_line(tmp_path):
    (tmp_path / "data.jsonl").write_text(real_rows(40))
    (tmp_path / "real.csv").write_text("label,text\n" + "".join(
        f"{json.loads(l)['label']},{json.loads(l)['text']}\n" for l in real_rows(30).splitlines()))
    done = run_cli("evaluate", str(tmp_path / "data.jsonl"), "--reference", str(tmp_path / "real.csv"),
                   "--trainer", "tfidf_linear", "--no-progress")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "data-evaluation"
    assert "two-sample AUC" in done.stdout and "macro-F1" in done.stdout
    assert f"report: {out / 'report.html'}" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["downstream"]["n_test"] == 30 and metrics["downstream"]["trainer"] == "tfidf_linear"
    again = run_cli("report", str(out))
    assert again.returncode == 0, again.stderr

    bad = run_cli("evaluate", str(tmp_path / "data.jsonl"), "--reference", str(tmp_path / "real.csv"), "--text-field", "body")
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"error: {tmp_path / 'data.jsonl'}: no column 'body' (columns: text, label)"
    missing = run_cli("evaluate", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl: file not found" in missing.stderr
    (tmp_path / "broken.jsonl").write_text('{"text": "ok", "label": "a"}\n{"text": oops}\n')
    broken = run_cli("evaluate", str(tmp_path / "broken.jsonl"))
    assert broken.returncode == 2 and broken.stderr.startswith(f"error: {tmp_path / 'broken.jsonl'}:2: not a JSON object")


def chromium_context(playwright):
    return playwright.chromium.launch_persistent_context(
        tempfile.mkdtemp(prefix="chromium-profile-"),
        executable_path=str(CHROMIUM),
        headless=True,
        viewport={"width": 1300, "height": 900},
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
    )


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/ensure_chromium.sh installs it)")
def test_report_renders_in_chromium_with_its_plots(run_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        context = chromium_context(p)
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        for section in ["labels", "lengths", "map", "coverage", "funnel", "downstream"]:
            svg = page.locator(f"#{section} svg").first
            box = svg.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 40, section
            marks = page.locator(f"#{section} svg rect, #{section} svg circle").count()
            assert marks > 0, section
        assert page.locator("#map svg circle").count() > 40  # synthetic and real points
        rows = page.locator("#record-table tr.rec")
        total = rows.count()
        assert total > 10
        page.fill("#filter", "zzz-no-such-text")
        assert page.locator("#record-table tr.rec:visible").count() == 0
        page.fill("#filter", "")
        assert page.locator("#record-table tr.rec:visible").count() == total
        headline = page.locator("#headline").inner_text()
        assert "few real + synthetic" in headline and "majority-class baseline" in headline
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        if os.environ.get("SYNTHLOOM_SCREENSHOT"):
            page.screenshot(path=os.environ["SYNTHLOOM_SCREENSHOT"], full_page=False)
        context.close()
    assert problems == []
    assert all(url.startswith("file://") for url in requests)  # nothing fetched from a network
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/ensure_chromium.sh installs it)")
def test_funnel_reasons_are_readable_at_a_normal_window_width(run_dir, tmp_path):
    """Three example reasons per stage, each with its 120-character text: a wide cell, a few lines each."""
    import shutil

    from synthloom.report import build_report

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("cache.sqlite*"))
    manifest = json.loads((copy / "manifest.json").read_text())
    text = "the harbour master said the tide would turn before the crew had the mast up, so the boat stayed in"[:120]
    for step in manifest["curation"]["funnel"]:
        step["examples"] = [{"id": f"r{i}", "flag": "drop", "reason": f"near duplicate of report-check-00000{i} (similarity 0.93)", "text": text}
                            for i in range(3)]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    build_report(copy)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = chromium_context(p)  # a 1300-pixel-wide window
        page = context.new_page()
        page.goto((copy / "report.html").as_uri())
        page.wait_for_load_state("load")
        funnel = page.locator("#funnel").bounding_box()
        assert funnel and funnel["width"] > 1000  # the whole width of the page, not half of it
        cell = page.locator("#funnel td.reasons").first.bounding_box()
        assert cell and cell["width"] > 450
        line = page.locator("#funnel td.reasons div").first.bounding_box()
        assert line and line["height"] < 3.5 * 20  # one example reads in at most three lines
        page.locator("#funnel").screenshot(path=str(tmp_path / "funnel.png"))
        if os.environ.get("SYNTHLOOM_SCREENSHOT"):
            page.locator("#funnel").screenshot(path=os.environ["SYNTHLOOM_SCREENSHOT"].replace(".png", "-funnel.png"))
        context.close()


PATHS_RECIPE = """\
name: paths-check
model: {backend: fake}
task:
  description: short notes about fruit and boats
  labels: {apples: about apples, boats: about boats}
demonstrations: {path: data/seeds.jsonl, k: 2}
generation: {records: 24, seed: 1}
evaluation:
  - stage: diversity
    embeddings: false
  - stage: fidelity
    reference: {path: data/missing.jsonl, if_missing: skip}
  - stage: downstream
    test: {path: data/real.jsonl}
    trainer: tfidf_linear
    bootstrap: 50
"""


def test_written_files_name_no_absolute_path_and_show_every_setting(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "real.jsonl").write_text(real_rows(40))
    (project / "data" / "seeds.jsonl").write_text(real_rows(6))
    (project / "recipe.yaml").write_text(PATHS_RECIPE)
    out = tmp_path / "out"
    synthloom.run(project / "recipe.yaml", out, progress=False)
    written = ["manifest.json", "metrics.json", "plots.json", "report.html", "README.md"]
    for name in written:
        text = (out / name).read_text()
        assert str(tmp_path) not in text, name
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert manifest["recipe"]["demonstrations"]["path"] == "data/seeds.jsonl"
    assert "fidelity skipped: data/missing.jsonl not found" in manifest["notes"]
    downstream = metrics["downstream"]
    assert downstream["test_data"] == "data/real.jsonl"
    # the recipe's 6 labelled demonstrations are its few real examples; no `train:`, so no all-real row
    assert list(downstream["settings"]) == ["majority", "few_real", "synthetic", "few_real_plus_synthetic"]
    assert downstream["settings"]["few_real"]["n_train"] == 6 and downstream["headline"] == "few_real_plus_synthetic"
    # the direct measures sit beside the same measures of the real test set, on as many texts
    real = metrics["diversity"]["real"]
    assert real["source"] == "data/real.jsonl" and real["records"] == metrics["diversity"]["records"]
    assert set(real["label_shares"]) == {"apples", "boats"}
    card = (out / "README.md").read_text()
    for row in ("| majority-class baseline", "| few real examples alone | 6 |", "| synthetic records alone |",
                "| **few real + synthetic** |", "| distinct-2 |", "| share of label apples |"):
        assert row in card, row
    html = (out / "report.html").read_text()
    assert 'id="headline"' in html and "<b>few real + synthetic</b>" in html and 'id="direct-vs-real"' in html

    # `synthloom evaluate`: paths relative to the folder it was run from
    from synthloom.execute import evaluate_file

    monkeypatch.chdir(project)
    evaluate_file(project / "data" / "seeds.jsonl", tmp_path / "ev", reference=project / "data" / "real.jsonl", trainer="tfidf_linear")
    for name in written:
        assert str(tmp_path) not in (tmp_path / "ev" / name).read_text(), name
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert manifest["source"] == "data/seeds.jsonl" and manifest["reference"] == "data/real.jsonl"


def test_portable_rewrites_absolute_paths_in_text_and_leaves_urls_alone():
    from synthloom.execute.portable import portable

    base = "/home/ana/projects/sms"
    data = {
        "path": "/home/ana/projects/sms/data/seeds.jsonl",
        "notes": ["fidelity skipped: /home/ana/data/real.csv not found.", "error: /home/ana/projects/sms/x.jsonl:2: not JSON"],
        "base_url": "http://127.0.0.1:8000/v1", "date": "12/05 a/b", "n": 3,
    }
    assert portable(data, base) == {
        "path": "data/seeds.jsonl",
        "notes": ["fidelity skipped: ../../data/real.csv not found.", "error: x.jsonl:2: not JSON"],
        "base_url": "http://127.0.0.1:8000/v1", "date": "12/05 a/b", "n": 3,
    }
