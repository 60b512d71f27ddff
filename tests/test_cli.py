"""The command line through a subprocess, as a user meets it."""

from __future__ import annotations

import json

from conftest import ROOT, run_cli

BAD = """\
name: demo
task:
  description: notes
  labels: [a, b]
generation:
  records: 10
  temprature: 0.3
"""


def test_validate_ok():
    done = run_cli("validate", str(ROOT / "examples" / "sms_spam.yaml"))
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_validate_bad_recipe_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    done = run_cli("validate", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {path}:7: generation.temprature: unknown key"]


def test_run_with_bad_recipe_fails_before_any_work(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    done = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_missing_recipe_file(tmp_path):
    done = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: recipe file not found"


def test_bad_demonstration_file_names_file_and_line(tmp_path):
    (tmp_path / "seeds.jsonl").write_text('{"text": "ok", "label": "a"}\n{"text": oops}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\n"
        "demonstrations: {path: seeds.jsonl}\ngeneration: {records: 3}\n"
    )
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: {tmp_path / 'seeds.jsonl'}:2: not a JSON object")


def test_run_report_and_rebuild(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\ngeneration: {records: 6}\n"
    )
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"report: {tmp_path / 'out' / 'report.html'}" in done.stdout
    assert "6 records generated" in done.stdout
    (tmp_path / "out" / "report.html").unlink()
    again = run_cli("report", str(tmp_path / "out"))
    assert again.returncode == 0 and (tmp_path / "out" / "report.html").exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "fake"


def test_report_on_a_non_run_directory(tmp_path):
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2
    assert "not a run directory" in done.stderr


def test_usage_error_exit_2():
    done = run_cli("run")
    assert done.returncode == 2
    assert "Missing argument" in done.stderr


def test_demonstration_row_without_text_is_a_clear_error(tmp_path):
    (tmp_path / "seeds.jsonl").write_text('{"text": "ok", "label": "a"}\n{"label": "b"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\n"
        "demonstrations: {path: seeds.jsonl}\ngeneration: {records: 3}\n"
    )
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'seeds.jsonl'}: row 2 has no value for text"


def test_version_names_synthloom_its_key_packages_and_the_model_file():
    from importlib.metadata import version

    from synthloom import __version__
    from synthloom.llm import bundled_model_path

    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert lines["synthloom"] == __version__
    for name in ("torch", "llama-cpp-python", "sentence-transformers"):
        assert lines[name] == version(name)
    model = bundled_model_path()
    assert lines["embedded_model"] == f"{model.name} ({model.stat().st_size / 1e6:.1f} MB)"


def test_version_imports_no_model_nor_data_library_and_matches_the_manifest(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys\nfrom synthloom.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(m for m in ('torch', 'llama_cpp', 'sentence_transformers', 'sklearn', 'numpy', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    printed = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines()[:-1])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\n"
                      "generation: {records: 2}\ncuration: []\nevaluation: []\n")
    ran = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert ran.returncode == 0, ran.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["versions"] == printed
