"""Review decisions in SQLite, the queue's order and filters, agreement, and apply-reviews."""

from __future__ import annotations

import json
import sqlite3

import pyarrow.parquet as pq
import pytest

from synthloom.records import DataError, read_records
from synthloom.review import (
    ReviewError,
    ReviewSet,
    ReviewStore,
    View,
    agreement,
    apply_reviews,
    review_verdicts,
    reviewer_queue,
)

from conftest import run_cli
from review_data import make_run


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run")


def test_decisions_are_committed_and_read_by_a_fresh_connection(run):
    store = ReviewStore(run / "reviews.sqlite")
    store.decide("r001", "alice", "accept", original_label="ham")
    store.decide("r002", "alice", "relabel", label="ham", original_label="spam")
    # Another process's view, without closing the writer: the rows are already there.
    rows = sqlite3.connect(run / "reviews.sqlite").execute(
        "SELECT record_id, criterion, verdict FROM reviews ORDER BY record_id, criterion").fetchall()
    assert rows == [("r001", "faithful", "yes"), ("r001", "label_correct", "yes"),
                    ("r002", "faithful", "no"), ("r002", "label_correct", "no")]
    assert review_verdicts(run) == rows
    store.close()


def test_undo_restores_the_previous_decision_and_its_verdicts(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        store.decide("r001", "alice", "reject", original_label="ham")
        store.decide("r001", "alice", "accept", original_label="ham")
        store.decide("r003", "alice", "skip", original_label="ham")
        assert store.undo("alice").action == "skip"
        assert store.undo("alice").action == "accept"
        assert review_verdicts(run) == [("r001", "faithful", "no")]
        assert store.undo("alice").action == "reject"
        assert review_verdicts(run) == []
        with pytest.raises(ReviewError, match="nothing to undo"):
            store.undo("alice")
        # nothing is deleted: the journal keeps every action, marked undone
        assert len(store.decisions(include_undone=True)) == 3
        assert store.decisions() == []


def test_retried_decision_with_same_uid_is_stored_once(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        first = store.decide("r001", "alice", "accept", uid="abc")
        again = store.decide("r001", "alice", "accept", uid="abc")
        assert first.seq == again.seq
        assert len(store.decisions()) == 1


def test_two_reviewers_do_not_overwrite_each_other(run):
    a, b = ReviewStore(run / "reviews.sqlite"), ReviewStore(run / "reviews.sqlite")
    a.decide("r000", "alice", "accept", original_label="spam")
    b.decide("r000", "bob", "relabel", label="ham", original_label="spam")
    current = a.current()
    assert current[("r000", "alice")].final_label == "spam"
    assert current[("r000", "bob")].final_label == "ham"
    assert sorted(a.verdicts()) == sorted([("r000", "faithful", "yes"), ("r000", "label_correct", "yes"),
                                           ("r000", "faithful", "no"), ("r000", "label_correct", "no")])
    a.close(), b.close()


def test_bad_decisions_are_refused(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        with pytest.raises(ReviewError, match="unknown action"):
            store.decide("r001", "alice", "maybe")
        with pytest.raises(ReviewError, match="needs the new label"):
            store.decide("r001", "alice", "relabel")
        with pytest.raises(ReviewError, match="reviewer name"):
            store.decide("r001", "<script>", "accept")


def test_agreement_between_reviewers(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        for rid, (x, y) in {"r000": ("accept", "accept"), "r001": ("accept", "reject"),
                            "r002": ("reject", "reject"), "r003": ("accept", "accept")}.items():
            store.decide(rid, "alice", x, original_label="ham")
            store.decide(rid, "bob", y, original_label="ham")
        store.decide("r004", "alice", "accept", original_label="ham")  # only one reviewer: not shared
        result = agreement(store.current())
    pair = result["pairs"][0]
    assert pair["reviewers"] == ["alice", "bob"] and pair["records"] == 4
    assert pair["outcome"]["agreement"] == 0.75 and pair["disagreements"] == ["r001"]
    assert pair["outcome"]["kappa"] == 0.5
    assert result["overall"]["outcome"] == 0.75


def test_default_order_is_least_confident_first(run):
    review_set = ReviewSet.load(run)
    ids = View().apply(review_set.records)
    scores = {r.id: min(v for k, v in r.scores.items() if k != "length_filter") for r in review_set.records}
    assert [scores[i] for i in ids] == sorted(scores.values())
    assert ids[0] == "r004"  # 0.05 self-consistency
    # any score or flag can order the queue
    by_judge = View(order="-score:llm_judge").apply(review_set.records)
    assert by_judge[0] == "r001" and by_judge[-1] == "r003"  # r003 has no judge score: last
    flagged = View(order="flag:self_consistency").apply(review_set.records)
    assert {review_set.by_id()[i].flags["self_consistency"] for i in flagged[:3]} == {"relabel"}


def test_filters_by_label_condition_and_stage_decision(run):
    records = ReviewSet.load(run).records
    assert all(r.label == "spam" for r in records if r.id in View(labels=("spam",)).apply(records))
    food = View(conditions=(("topic", "food"),)).apply(records)
    assert food and all(r.conditions["topic"] == "food" for r in records if r.id in food)
    relabel = View(decisions=(("self_consistency", "relabel"),)).apply(records)
    assert sorted(relabel) == ["r002", "r004", "r007"]
    with pytest.raises(DataError, match="unknown order"):
        View(order="sideways").apply(records)


def test_reviewer_queue_skips_decided_puts_skipped_last_and_caps_overlap():
    ordered = ["a", "b", "c", "d"]
    assert reviewer_queue(ordered, {"b"}, ["a"]) == ["c", "d", "a"]
    assert reviewer_queue(ordered, set(), [], {"c": 1}, overlap=1) == ["a", "b", "d"]
    assert reviewer_queue(ordered, set(), [], {"c": 1}, overlap=None) == ordered


def test_review_set_reads_labels_from_the_manifest_and_rejected_on_request(run):
    plain = ReviewSet.load(run)
    assert plain.labels == ["spam", "ham"] and plain.label_descriptions["spam"] == "spam messages"
    assert len(plain.records) == 8
    both = ReviewSet.load(run, rejected=True)
    assert len(both.records) == 10 and both.source["x000"] == "rejected"


def test_review_set_of_a_plain_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "hello", "label": "a"}\n{"text": "bye", "label": "b"}\n')
    review_set = ReviewSet.load(path)
    assert review_set.store_path == tmp_path / "data.reviews.sqlite"
    assert review_set.labels == ["a", "b"]
    with pytest.raises(DataError, match="not a run directory"):
        ReviewSet.load(tmp_path)


# -- apply-reviews --------------------------------------------------------------------


def test_apply_reviews_writes_labels_edits_and_audit_atomically(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        store.decide("r000", "alice", "accept", original_label="spam")
        store.decide("r004", "alice", "relabel", label="spam", original_label="ham")
        store.decide("r001", "alice", "edit", fields={"text": "Running late, see you at 7"}, original_label="ham")
        store.decide("r002", "alice", "reject", original_label="spam")
        store.decide("r005", "alice", "skip", original_label="ham")
        store.decide("x000", "alice", "accept", original_label="ham")  # kept from rejected
    result = apply_reviews(run)
    assert result.counts == {"reviewed": 5, "accepted": 2, "relabelled": 1, "edited": 1, "rejected": 1, "rescued": 1}
    curated = {r.id: r for r in read_records(run / "curated.parquet")}
    assert "r002" not in curated and "x000" in curated
    assert curated["r004"].label == "spam" and curated["r004"].flags["human_review"] == "relabel"
    assert curated["r001"].fields["text"] == "Running late, see you at 7"
    assert curated["r005"].flags.get("human_review") is None  # skipped: untouched
    table = pq.read_table(run / "curated.parquet").to_pylist()
    audit = {row["id"]: (row["reviewed_by"], row["reviewed_at"]) for row in table}
    assert audit["r004"][0] == "alice" and audit["r004"][1].startswith("20")
    assert audit["r003"] == (None, None)
    rejected = {r.id: r for r in read_records(run / "rejected.parquet")}
    assert rejected["r002"].flags["human_review"] == "drop" and "x000" not in rejected
    assert json.loads((run / "manifest.json").read_text())["review"]["counts"]["rejected"] == 1
    assert not list(run.glob(".*.tmp"))


def test_apply_reviews_is_repeatable_and_follows_undo(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        store.decide("r004", "alice", "relabel", label="spam", original_label="ham")
        apply_reviews(run)
        apply_reviews(run)
        assert {r.id: r.label for r in read_records(run / "curated.parquet")}["r004"] == "spam"
        store.undo("alice")
    apply_reviews(run)
    after = {r.id: r for r in read_records(run / "curated.parquet")}
    assert after["r004"].label == "ham" and "human_review" not in after["r004"].flags
    assert len(after) == 8


def test_apply_reviews_majority_and_conflicts(run):
    with ReviewStore(run / "reviews.sqlite") as store:
        for who in ("alice", "bob", "carol"):
            store.decide("r004", who, "relabel" if who != "carol" else "accept",
                         label="spam" if who != "carol" else None, original_label="ham")
        store.decide("r001", "alice", "accept", original_label="ham")
        store.decide("r001", "bob", "reject", original_label="ham")
    result = apply_reviews(run)
    assert result.conflicts == ["r001"]
    curated = {r.id: r for r in read_records(run / "curated.parquet")}
    assert curated["r004"].label == "spam"
    assert curated["r004"].scores["human_review"] == pytest.approx(2 / 3)
    assert "human_review" not in curated["r001"].flags


def test_apply_reviews_cli(run, tmp_path):
    done = run_cli("apply-reviews", str(run))
    assert done.returncode == 2 and "no reviews yet" in done.stderr
    with ReviewStore(run / "reviews.sqlite") as store:
        store.decide("r002", "alice", "reject", original_label="spam")
    done = run_cli("apply-reviews", str(run))
    assert done.returncode == 0, done.stderr
    assert "1 rejected" in done.stdout
    done = run_cli("apply-reviews", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_view_from_url_parameters():
    from multidict import MultiDict

    view = View.from_query(MultiDict([
        ("order", "-score:llm_judge"), ("label", "spam"), ("label", "ham"),
        ("condition", "topic:food"), ("decision", "self_consistency:relabel"), ("assigned", "1"),
    ]))
    assert view == View("-score:llm_judge", ("spam", "ham"), (("topic", "food"),),
                        (("self_consistency", "relabel"),), True)
    assert View.from_query(MultiDict(), default_order="assigned").order == "assigned"
    with pytest.raises(DataError, match="key:value"):
        View.from_query(MultiDict([("condition", "topic")]))


def test_apply_reviews_to_a_plain_dataset_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a1", "text": "hello there", "label": "x"}\n{"id": "a2", "text": "bye", "label": "y"}\n')
    review_set = ReviewSet.load(path)
    with ReviewStore(review_set.store_path) as store:
        store.decide("a1", "alice", "relabel", label="y", original_label="x")
        store.decide("a2", "alice", "reject", original_label="y")
    result = apply_reviews(path)
    assert result.curated == tmp_path / "data.reviewed.parquet"
    assert [(r.id, r.label) for r in read_records(result.curated)] == [("a1", "y")]
    assert [r.id for r in read_records(result.rejected)] == ["a2"]
    assert path.read_text().count("\n") == 2  # the original is left alone


def test_review_command_refuses_bad_input_on_one_line(tmp_path, run):
    done = run_cli("review", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run directory or dataset file"
    done = run_cli("review", str(run), "--token", "short")
    assert done.returncode == 2 and "--token" in done.stderr
