"""Label Studio and Argilla files: export, import, and a round trip that loses no decision."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from synthloom.records import DataError
from synthloom.review import (
    ReviewSet,
    ReviewStore,
    export_argilla,
    export_label_studio,
    import_argilla,
    import_label_studio,
)

from conftest import run_cli
from review_data import make_run


def _decide_some(store: ReviewStore) -> None:
    store.decide("r000", "alice@example.org", "accept", original_label="spam")
    store.decide("r004", "alice@example.org", "relabel", label="spam", original_label="ham")
    store.decide("r001", "bob", "edit", fields={"text": "Running late, see you at 7"}, original_label="ham")
    store.decide("r002", "bob", "reject", original_label="spam")


def _standing(store: ReviewStore) -> dict:
    return {key: (d.action, d.final_label, d.fields) for key, d in store.current().items()}


@pytest.mark.parametrize("kind", ["label-studio", "argilla"])
def test_round_trip_keeps_every_decision(tmp_path, kind):
    run = make_run(tmp_path / "run")
    review_set = ReviewSet.load(run)
    with ReviewStore(run / "reviews.sqlite") as store:
        _decide_some(store)
        before = _standing(store)
        out = tmp_path / ("tasks.json" if kind == "label-studio" else "records.jsonl")
        (export_label_studio if kind == "label-studio" else export_argilla)(review_set, out, store)
    fresh = ReviewStore(tmp_path / "fresh.sqlite")
    importer = import_label_studio if kind == "label-studio" else import_argilla
    assert importer(out, review_set, fresh) == 4
    assert _standing(fresh) == before
    # importing the same file again adds nothing
    importer(out, review_set, fresh)
    assert len(fresh.decisions()) == 4
    fresh.close()


def test_label_studio_export_shape_and_config(tmp_path):
    run = make_run(tmp_path / "run")
    review_set = ReviewSet.load(run)
    out = export_label_studio(review_set, tmp_path / "tasks.json")
    tasks = json.loads(out.read_text())
    assert len(tasks) == 8
    task = next(t for t in tasks if t["data"]["synthloom_id"] == "r004")
    assert task["data"]["text"].startswith("Congratulations")
    prediction = task["predictions"][0]
    assert prediction["score"] == pytest.approx(0.05)
    assert prediction["result"][0]["value"] == {"choices": ["ham"]}
    config = ET.fromstring(out.with_suffix(".xml").read_text())
    choices = [c.get("value") for c in config.find("Choices[@name='label']")]
    assert choices == ["spam", "ham"]
    assert config.find("Text").get("value") == "$text"


def test_label_studio_annotations_from_the_tool(tmp_path):
    """An export as Label Studio writes it: numeric users, a skip, a reject, an edit."""
    run = make_run(tmp_path / "run")
    review_set = ReviewSet.load(run)

    def ann(user, *results, cancelled=False):
        return {"completed_by": user, "was_cancelled": cancelled, "result": list(results)}

    label = lambda v: {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [v]}}
    tasks = [
        {"id": 1, "data": {"synthloom_id": "r000", "text": "x"}, "annotations": [ann(7, label("spam"))]},
        {"id": 2, "data": {"synthloom_id": "r001", "text": "x"}, "annotations": [
            ann(7, label("ham"), {"from_name": "edited_text", "type": "textarea", "value": {"text": ["fixed"]}}),
            ann({"id": 9, "email": "eve@example.org"}, cancelled=True)]},
        {"id": 3, "data": {"synthloom_id": "r002", "text": "x"}, "annotations": [
            ann(7, {"from_name": "reject", "type": "choices", "value": {"choices": ["reject"]}})]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    with ReviewStore(tmp_path / "s.sqlite") as store:
        assert import_label_studio(path, review_set, store) == 4
        actions = {(d.record_id, d.reviewer): d for d in store.decisions()}
    assert actions[("r000", "labelstudio-7")].action == "accept"
    assert actions[("r001", "labelstudio-7")].action == "edit"
    assert actions[("r001", "labelstudio-7")].fields == {"text": "fixed"}
    assert actions[("r001", "eve@example.org")].action == "skip"
    assert actions[("r002", "labelstudio-7")].action == "reject"


def test_import_errors_name_the_place(tmp_path):
    run = make_run(tmp_path / "run")
    review_set = ReviewSet.load(run)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"metadata": {"synthloom_id": "r000"}, "responses": {}}) + "\n"
                   + json.dumps({"metadata": {"synthloom_id": "nope"}, "responses": {}}) + "\n")
    with ReviewStore(tmp_path / "s.sqlite") as store, pytest.raises(DataError, match=r"bad.jsonl:2: record 'nope'"):
        import_argilla(bad, review_set, store)
    wrong_label = tmp_path / "w.jsonl"
    wrong_label.write_text(json.dumps({"metadata": {"synthloom_id": "r000"},
                                       "responses": {"label": [{"value": "eggs", "user_id": "u1"}]}}) + "\n")
    with ReviewStore(tmp_path / "s.sqlite") as store, pytest.raises(DataError, match=r"w.jsonl:1: unknown label 'eggs'"):
        import_argilla(wrong_label, review_set, store)


def test_export_and_import_commands(tmp_path):
    run = make_run(tmp_path / "run")
    with ReviewStore(run / "reviews.sqlite") as store:
        _decide_some(store)
    done = run_cli("export-reviews", str(run), "--out", str(tmp_path / "t.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "argilla" in done.stdout
    lines = [json.loads(l) for l in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and lines[0]["suggestions"]["label"]["agent"] == "synthloom"
    other = make_run(tmp_path / "other")
    done = run_cli("import-reviews", str(other), str(tmp_path / "t.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "imported 4 decisions" in done.stdout
    done = run_cli("export-reviews", str(run), "--out", str(tmp_path / "t.x"), "--format", "excel")
    assert done.returncode == 2 and "--format" in done.stderr
