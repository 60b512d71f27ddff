"""`synthloom export`: TRL dataset forms as JSONL, Parquet, a DatasetDict (save_to_disk) and a hub push."""

from __future__ import annotations

import io
import json

import datasets
import huggingface_hub
import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.cli import main
from synthloom.execute import curate_data
from synthloom.execute.export import export_run
from synthloom.recipe import recipe_from_dict

from scripted_model import scripted_backend
from test_post_training import CHAT


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chat")
    recipe = recipe_from_dict(CHAT, base_dir=tmp)
    synthloom.run(recipe, tmp / "run", progress=False, backend=scripted_backend())
    return tmp / "run"


def curated_messages(run_dir):
    return {r["id"]: r["messages"] for r in pq.read_table(run_dir / "curated.parquet").to_pylist()}


def test_messages_to_jsonl_parquet_and_a_dataset_dict_round_trip(chat_run, tmp_path):
    expected = curated_messages(chat_run)
    jsonl = [json.loads(line) for line in _export(chat_run, "messages", tmp_path / "m.jsonl").read_text().splitlines()]
    assert {r["id"]: r["messages"] for r in jsonl} == expected
    parquet = pq.read_table(_export(chat_run, "messages", tmp_path / "m.parquet")).to_pylist()
    assert {r["id"]: r["messages"] for r in parquet} == expected
    folder = _export(chat_run, "messages", tmp_path / "ds")
    loaded = datasets.load_from_disk(str(folder))
    assert isinstance(loaded, datasets.DatasetDict) and list(loaded) == ["train"]
    assert {r["id"]: r["messages"] for r in loaded["train"]} == expected
    assert "`messages`" in (folder / "README.md").read_text()


def test_prompt_completion_splits_at_the_last_assistant_turn(chat_run, tmp_path):
    rows = [json.loads(x) for x in _export(chat_run, "prompt-completion", tmp_path / "pc.jsonl").read_text().splitlines()]
    expected = curated_messages(chat_run)
    for row in rows:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["prompt"] + row["completion"] == expected[row["id"]] and row["completion"][0]["role"] == "assistant"


def test_preference_rows_keep_scores_and_tools(tmp_path):
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({
        "id": f"p{i}", "prompt": f"What is {i} + 1?", "chosen": str(i + 1), "rejected": str(i + 2),
        "score_chosen": 9, "score_rejected": 3, "margin": 6, "tools": json.dumps(tools)}) + "\n" for i in range(3)))
    rows = [json.loads(x) for x in _export(data, "preference", tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows[1]["prompt"] == [{"role": "user", "content": "What is 1 + 1?"}]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "2"}] and rows[1]["rejected"][0]["content"] == "3"
    assert (rows[1]["score_chosen"], rows[1]["score_rejected"], rows[1]["margin"]) == (9.0, 3.0, 6.0)
    assert rows[1]["tools"] == tools  # a list in JSONL (the OpenAI form) ...
    loaded = datasets.load_from_disk(str(_export(data, "preference", tmp_path / "pds")))
    assert json.loads(loaded["train"][0]["tools"]) == tools  # ... a JSON string in Arrow


def _export(source, form, out):
    main(["export", str(source), "--format", form, "--out", str(out)])
    return out


def _fails(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["export", *map(str, args)])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.count("\n") == 0
    return err


def test_bad_input_is_one_line_exit_2(chat_run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert "unknown format 'sft'" in _fails(capsys, chat_run, "--format", "sft", "--out", tmp_path / "x.jsonl")
    err = _fails(capsys, chat_run, "--format", "preference", "--out", tmp_path / "x.jsonl")
    assert "record chat-00000" in err and "no chosen or rejected field" in err
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"id": "t1", "text": "hello"}) + "\n")
    assert "record t1: no conversation to export" in _fails(capsys, texts, "--out", tmp_path / "x.jsonl")
    assert "needs a token" in _fails(capsys, chat_run, "--out", tmp_path / "x.jsonl", "--hub-repo", "me/data")
    assert "not a finished run directory" in _fails(capsys, tmp_path, "--out", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_push_to_hub_uploads_the_parquet_split_and_a_card_with_verifier_pass_rates(tmp_path, monkeypatch):
    # Records checked by a real verifier (math_answer, in the sandbox): 2 of 3 answers are right.
    data = tmp_path / "math.jsonl"
    rows = [("What is 2 + 3?", "The answer is 5.", "5"), ("What is 10 / 4?", "The answer is 5/2.", "2.5"),
            ("What is 3 * 3?", "The answer is 6.", "9")]
    data.write_text("".join(json.dumps({"question": q, "answer": a, "reference": r}) + "\n" for q, a, r in rows))
    stages = tmp_path / "stages.yaml"
    stages.write_text("text_field: question\ncuration:\n  - stage: math_answer\n")
    curate_data(data, tmp_path / "curated", stages=stages, progress=False)

    calls = []
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # should anything escape the intercept, it goes nowhere
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("repo", repo_id, kw, self.token)))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit",
                        lambda self, repo_id, operations, **kw: calls.append(("commit", repo_id, list(operations), kw)))
    result = export_run(tmp_path / "curated", "messages", tmp_path / "out.jsonl", hub_repo="me/math", token="hf_x")
    (_, repo, repo_kw, token), (_, commit_repo, operations, commit_kw) = calls
    assert (repo, token, repo_kw["repo_type"], commit_repo, commit_kw["repo_type"]) == ("me/math", "hf_x", "dataset", "me/math", "dataset")
    files = {op.path_in_repo: op.path_or_fileobj for op in operations}
    assert list(files) == result.uploaded == ["data/train-00000-of-00001.parquet", "README.md"]
    pushed = pq.read_table(io.BytesIO(files["data/train-00000-of-00001.parquet"])).to_pylist()
    assert [r["messages"] for r in pushed] == [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a, _ in rows[:2]]
    card = files["README.md"].decode()
    assert "| math_answer | 3 | 2 | 66.7% |" in card
    assert "path: data/train-00000-of-00001.parquet" in card and "split: train" in card


def test_a_runs_card_lists_the_verifiers_that_ran_with_their_pass_rates():
    from synthloom.report import render_card

    funnel = [{"stage": "exact_dedup", "seen": 10, "kept": 9, "dropped": 1, "relabelled": 0, "reweighted": 0},
              {"stage": "python_exec", "seen": 9, "kept": 6, "dropped": 3, "relabelled": 0, "reweighted": 0},
              {"stage": "sql_exec", "seen": 6, "kept": 6, "dropped": 0, "relabelled": 0, "reweighted": 0}]
    card = render_card({"recipe": {"name": "code"}, "curation": {"funnel": funnel}}, {}, [])
    assert "| python_exec | 9 | 6 | 66.7% |" in card and "| sql_exec | 6 | 6 | 100.0% |" in card
    assert "| exact_dedup | 10 | 9 | 90.0% |" not in card  # a filter, not a verifier


def test_a_saved_folders_card_points_at_no_hub_file(chat_run, tmp_path):
    card = (_export(chat_run, "messages", tmp_path / "ds") / "README.md").read_text()
    assert "configs:" not in card and "data/train-00000-of-00001.parquet" not in card
    assert "No verifier ran on these records" in card  # the chat recipe lists no verifier: the card says so
