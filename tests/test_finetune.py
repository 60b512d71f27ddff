"""Fine-tuning a language model on the data: TRL trainers on the embedded SmolLM2, and the finetune stage.

The slow tests train for real (LoRA, a handful of steps, short sequences)
on the bundled SmolLM2-135M-Instruct, with one torch thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthloom.evaluate.finetune import paired_difference
from synthloom.records import Record
from synthloom.train.lm import LMSettings, check_rows
from synthloom.train.lm_models import LMError, resolve_model
from synthloom.train.lm_use import classification_messages, classification_row

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"spam": "prizes, offers to reply to", "ham": "a personal message"}
SPAM = ["WIN a free prize now, text 80082", "URGENT! Claim your cash award, call 09050001234", "Free ringtones, reply YES now"]
HAM = ["see you at lunch tomorrow", "can you pick up milk on the way home", "running late, be there in 10"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_THREADS", "1")


def _rows(n: int = 6) -> list[dict]:
    texts = [(t, "spam") for t in SPAM] + [(t, "ham") for t in HAM]
    return [classification_row([t], y, LABELS, "SMS spam detection") for t, y in (texts * 4)[:n]]


# ---------------------------------------------------------------- checks before any model loads

def test_rows_a_trainer_cannot_use_are_named():
    with pytest.raises(LMError, match="row 2: SFT needs"):
        check_rows([{"messages": [{"role": "user", "content": "hi"}]}, {"text": "no conversation"}], "sft", "data.jsonl")
    pair = {"prompt": [{"role": "user", "content": "say hi"}], "chosen": [{"role": "assistant", "content": "hi"}]}
    with pytest.raises(LMError, match="row 1: DPO needs prompt/chosen/rejected; missing rejected"):
        check_rows([pair, pair], "dpo", "pairs")
    empty = {**pair, "rejected": [{"role": "assistant", "content": "  "}]}
    with pytest.raises(LMError, match="row 2: the rejected side of the pair is empty"):
        check_rows([{**pair, "rejected": "no"}, empty], "dpo", "pairs")
    with pytest.raises(LMError, match="1 row"):
        check_rows(_rows(1), "sft", "tiny")
    assert check_rows(_rows(2), "sft") == "prompt-completion"


def test_a_model_that_cannot_be_loaded_is_one_line(tmp_path):
    with pytest.raises(LMError, match="not in the Hugging Face cache; nothing is downloaded"):
        resolve_model("no-such-owner/no-such-model-xyz")
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(LMError, match="not a Hugging Face model folder"):
        resolve_model(str(tmp_path))


def test_cli_bad_model_exits_2_before_training(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"say {i}", "response": f"{i}"}) + "\n" for i in range(4)))
    done = subprocess.run(
        [sys.executable, "-m", "synthloom", "finetune", str(data), "--out", str(tmp_path / "ft"), "--model", "nobody/nothing-here"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: model 'nobody/nothing-here': not a local folder")
    assert not (tmp_path / "ft" / "model").exists()


def test_classification_prompt_names_every_label():
    content = classification_messages(["hello"], LABELS, "SMS")[0]["content"]
    assert "Answer with one label (spam, ham)" in content and content.endswith("hello")


def test_paired_difference_of_identical_arms_is_zero_and_a_better_arm_is_above():
    truth = ["a", "b"] * 20
    same = paired_difference(truth, truth, truth, resamples=200)
    assert same["macro_f1"] == 0 and same["macro_f1_ci"] == [0.0, 0.0]
    worse = ["a"] * 40
    better = paired_difference(truth, truth, worse, resamples=200)
    assert better["macro_f1"] > 0.5 and better["macro_f1_ci"][0] > 0


def test_finetune_stage_settings_are_checked():
    from pydantic import ValidationError

    from synthloom.recipe import FinetuneSpec

    with pytest.raises(ValidationError, match="exactly one of"):
        FinetuneSpec()
    with pytest.raises(ValidationError, match="no answers to check"):
        FinetuneSpec(benchmark={"name": "truthful_qa"})
    with pytest.raises(ValidationError, match="shares must be in"):
        FinetuneSpec(prompts={"path": "p.jsonl"}, learning_curve=[0.5, 2])


# ---------------------------------------------------------------- real training

@pytest.mark.slow
def test_weights_change_the_loss(tmp_path):
    import torch

    from synthloom.train.lm import build_trainer

    trainer, _ = build_trainer(_rows(2), tmp_path, LMSettings(max_steps=1, batch_size=2, max_length=160))
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["weight"].tolist() == [1.0, 1.0]  # the weight column reached the batch
    trainer.model.eval()

    def loss(weights: list[float]) -> float:
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, {**batch, "weight": torch.tensor(weights)}))

    even, first_only, second_only, doubled = loss([1, 1]), loss([1, 0]), loss([0, 1]), loss([2, 2])
    assert first_only != pytest.approx(second_only, abs=1e-4)
    assert even == pytest.approx((first_only + second_only) / 2, rel=1e-4)  # each example's loss times its weight
    assert doubled == pytest.approx(even, rel=1e-5)  # normalised by the weights' sum


def _wait_for_step(log: Path, step: int, proc: subprocess.Popen, limit: float = 600) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if log.exists() and any(json.loads(line)["step"] >= step for line in log.read_text().splitlines() if line.strip()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.5)
    raise AssertionError("no training step logged")


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_a_rerun_resumes_and_the_adapter_changes_outputs(tmp_path):
    data = tmp_path / "sms.jsonl"
    pairs = ([{"instruction": f"Is this spam or ham? {t}", "response": "spam"} for t in SPAM]
             + [{"instruction": f"Is this spam or ham? {t}", "response": "ham"} for t in HAM])
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = tmp_path / "ft"
    command = [sys.executable, "-m", "synthloom", "finetune", str(data), "--out", str(out), "--max-steps", "5",
               "--batch-size", "2", "--max-length", "96", "--lr", "2e-3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SYNTHLOOM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_step(out / "train_log.jsonl", 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "checkpoint saved in" in err and "run the same command to resume" in err
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "no checkpoint after Ctrl-C"
    saved = int(checkpoints[-1].name.split("-")[1])
    assert 1 <= saved < 5
    assert not (out / "model").exists()

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"resumed from step {saved}" in done.stdout
    assert "5 steps" in done.stdout
    meta = json.loads((out / "model" / "synthloom_training.json").read_text())
    assert meta["resumed_from"] == saved and meta["steps"] == 5
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged][-1] == 5 and min(r["step"] for r in logged) == 1  # one log across both runs
    assert logged[-1]["loss"] < logged[0]["loss"]  # the loss falls
    card = (out / "model" / "README.md").read_text()
    assert "LoRA adapter" in card and os.path.relpath(data.resolve(), (out / "model").resolve()) in card
    assert str(data.resolve()) not in card  # no path of this machine
    assert (out / "model" / "adapter_config.json").exists()

    # The saved adapter loads (base model underneath) and answers differently from the base model.
    import torch

    from synthloom.train.lm_models import load_model
    from synthloom.train.lm_use import choose_labels

    prompt = [[{"role": "user", "content": f"Is this spam or ham? {SPAM[0]}"}]]
    base, tokenizer = load_model(None)
    tuned, _ = load_model(str(out / "model"))
    ids = tokenizer.apply_chat_template(prompt[0], add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, tuned(input_ids=ids).logits, atol=1e-3)
    assert choose_labels(tuned, tokenizer, prompt, ["spam", "ham"]) == ["spam"]


@pytest.mark.slow
def test_finetune_stage_scores_base_and_finetuned_on_the_same_prompts(tmp_path):
    from synthloom.evaluate.finetune import finetune_classification
    from synthloom.recipe import FinetuneSpec

    records = [Record(id=f"s{i}", fields={"text": t}, label=y) for i, (t, y) in enumerate([(t, "spam") for t in SPAM] + [(t, "ham") for t in HAM])]
    test = [Record(id=f"t{i}", fields={"text": t}, label=y) for i, (t, y) in enumerate(
        [("Congratulations, you won a cruise! Call now", "spam"), ("are we still on for dinner", "ham"),
         ("Claim your FREE gift card, text WIN", "spam"), ("mum says hi, call her later", "ham")])]
    spec = FinetuneSpec(test={"path": str(tmp_path / "unused.jsonl"), "if_missing": "skip"}, max_steps=2, batch_size=3, max_length=160,
                        learning_curve=[0.5], minilm=False, bootstrap=50, learning_rate=1e-3)
    result = finetune_classification(records, test, spec, tmp_path / "finetune", labels=LABELS, task="SMS spam detection",
                                     fields=["text"], real_train=records)
    arms = result["arms"]
    assert result["n_test"] == 4 and result["labels"] == ["spam", "ham"]
    assert {"base", "finetuned", "finetuned_real"} <= set(arms)
    for arm in ("base", "finetuned", "finetuned_real"):
        assert 0 <= arms[arm]["macro_f1"] <= 1 and len(arms[arm]["macro_f1_ci"]) == 2
    diff = result["differences"]["finetuned_vs_base"]
    assert diff["macro_f1"] == pytest.approx(arms["finetuned"]["macro_f1"] - arms["base"]["macro_f1"], abs=1e-3)
    assert [p["records"] for p in result["learning_curve"]] == [3, 6]
    assert (Path(result["model_dir"]) / "adapter_config.json").exists()


@pytest.mark.slow
def test_dpo_trains_on_pairs_and_saves_an_adapter(tmp_path):
    from synthloom.train.lm import train_lm

    pair = lambda q, good, bad, w: {"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": good}],  # noqa: E731
                                    "rejected": [{"role": "assistant", "content": bad}], "weight": w}
    rows = [pair("Say hello politely.", "Hello! How can I help you today?", "No.", 1.0),
            pair("Name a colour.", "Blue.", "I refuse to answer.", 0.5)] * 2
    result = train_lm(rows, tmp_path / "dpo", LMSettings(method="dpo", max_steps=2, batch_size=2, max_length=64))
    assert result.steps == 2 and result.method == "dpo"
    assert result.first_loss == pytest.approx(0.6931, abs=1e-3)  # DPO starts at log 2: the policy is the reference
    assert result.last_loss < result.first_loss
    assert (result.model_dir / "adapter_config.json").exists() and "(DPO)" in (result.model_dir / "README.md").read_text()


@pytest.mark.slow
def test_finetune_stage_judges_finetuned_against_base_answers_to_the_same_prompts(tmp_path):
    from synthloom.evaluate.finetune import finetune_instructions
    from synthloom.evaluate.judge import Judge
    from synthloom.llm import FakeBackend, FakeConfig
    from synthloom.recipe import FinetuneSpec

    seen: list[str] = []

    def judge_by_length(request):  # a scripted judge: the longer answer wins, in either order
        text = request.messages[-1]["content"]
        seen.append(text)
        first = text.split("Answer 1:\n", 1)[1].split("\n\nAnswer 2:\n", 1)[0]
        second = text.split("\n\nAnswer 2:\n", 1)[1].split("\n\nWhich answer", 1)[0]
        return json.dumps({"winner": "1" if len(first) > len(second) else "2" if len(second) > len(first) else "tie"})

    records = [Record(id=f"i{i}", fields={"instruction": q, "response": a}) for i, (q, a) in enumerate(
        [("Name a fruit.", "Apple."), ("Name a colour.", "Blue."), ("Name an animal.", "Cat."), ("Name a city.", "Paris.")])]
    spec = FinetuneSpec(prompts={"path": str(tmp_path / "unused.jsonl"), "if_missing": "skip"}, max_steps=2, batch_size=2,
                        max_length=64, learning_curve=None, max_new_tokens=12, bootstrap=50, learning_rate=1e-3)
    judge = Judge(FakeConfig(), backend=FakeBackend(FakeConfig(), responder=judge_by_length))
    held = ["Name a vegetable.", "Name a river."]
    result = finetune_instructions(records, held, spec, tmp_path / "finetune", judge)
    pairwise = result["pairwise"]
    assert result["n_test"] == 2 and pairwise["prompts"] == 2 and len(seen) == 4  # both orders of both prompts
    assert [e["prompt"] for e in pairwise["examples"]] == held
    for e in pairwise["examples"]:  # each verdict compares that prompt's fine-tuned and base answers
        assert any(e["finetuned"] in s and e["base"] in s and e["prompt"] in s for s in seen)
    expected = [1.0 if len(e["finetuned"]) > len(e["base"]) else 0.0 if len(e["finetuned"]) < len(e["base"]) else 0.5
                for e in pairwise["examples"]]
    assert pairwise["win_rate"] == pytest.approx(sum(expected) / 2)
    assert [p["records"] for p in result["learning_curve"]] == [4]


def test_gguf_export_without_the_converter_says_so(tmp_path, monkeypatch):
    from synthloom.execute.finetune import export_gguf

    monkeypatch.setenv("SYNTHLOOM_GGUF_CONVERTER", str(tmp_path / "missing" / "convert_hf_to_gguf.py"))
    path, note = export_gguf(tmp_path / "model", tmp_path)
    assert path is None and "convert_hf_to_gguf.py was not found" in note and str(tmp_path / "model") in note


@pytest.mark.slow
def test_the_sms_finetune_example_runs_end_to_end_through_the_cli(tmp_path):
    """examples/sms_finetune.yaml, shrunk (12 records, 2 training steps, 6 test messages of the test's own), as a user runs it."""
    import yaml

    recipe = yaml.safe_load((ROOT / "examples" / "sms_finetune.yaml").read_text())
    recipe["demonstrations"]["path"] = str(ROOT / "examples" / recipe["demonstrations"]["path"])
    recipe["generation"]["records"] = 12
    (stage,) = recipe["evaluation"]
    test, train = tmp_path / "sms_test.tsv", tmp_path / "sms_train.tsv"
    test.write_text("".join(f"{y}\t{t}\n" for t, y in [
        ("Congratulations, you won a cruise! Call 09061234567 now", "spam"), ("are we still on for dinner", "ham"),
        ("Claim your FREE gift card, text WIN to 80086", "spam"), ("mum says hi, call her later", "ham"),
        ("URGENT: your mobile number has won 2000 pounds", "spam"), ("ok see you at 8 then", "ham")]))
    train.write_text("".join(f"spam\t{t}\n" for t in SPAM) + "".join(f"ham\t{t}\n" for t in HAM))
    stage.update(max_steps=2, batch_size=4, n_test=6, learning_curve=[1.0], minilm=False, learning_rate=1e-3, bootstrap=100)
    stage["test"] = {"path": str(test), "format": "tsv", "columns": ["label", "text"]}
    stage["train"] = {"path": str(train), "format": "tsv", "columns": ["label", "text"]}
    path = tmp_path / "sms_finetune.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SYNTHLOOM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "synthloom", "run", str(path), "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    result = json.loads((out / "metrics.json").read_text())["finetune"]
    assert result["task"] == "classification" and result["n_test"] == 6 and Path(result["test_data"]).name == test.name
    arms = result["arms"]
    for arm in ("base", "finetuned", "finetuned_real"):
        assert 0 <= arms[arm]["macro_f1"] <= 1 and len(arms[arm]["macro_f1_ci"]) == 2
    assert arms["finetuned_real"]["n_train"] == min(6, arms["finetuned"]["n_train"])  # as many real as synthetic, up to the 6 real
    assert arms["finetuned"]["steps"] == 2
    diff = result["differences"]["finetuned_vs_base"]
    assert diff["macro_f1"] == pytest.approx(arms["finetuned"]["macro_f1"] - arms["base"]["macro_f1"], abs=1e-3)
    model = out / "finetune" / "synthetic" / "model"
    assert Path(result["model_dir"]).parts[-4:] == ("run", "finetune", "synthetic", "model")  # portable: relative to the run's folder
    assert (model / "adapter_config.json").exists()
    card = (model / "README.md").read_text()
    assert "LoRA adapter" in card and f"run {out.resolve().name}" in card  # the card names the data run
    assert str(tmp_path) not in card  # and no path of this machine
    report = (out / "report.html").read_text()
    assert '<section id="finetune">' in report and "fine-tuned on the synthetic records" in report


@pytest.mark.slow
def test_gguf_export_of_a_finetuned_model_loads_in_llama_cpp(tmp_path):
    from synthloom.execute.finetune import converter, export_gguf
    from synthloom.train.lm import train_lm

    if converter() is None:
        pytest.skip("llama.cpp's convert_hf_to_gguf.py not found (SYNTHLOOM_GGUF_CONVERTER or the PATH; docs/finetune.md says how to get it)")
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = train_lm(_rows(4), tmp_path / "ft", LMSettings(max_steps=1, batch_size=2, max_length=160, learning_rate=1e-3))
    path, note = export_gguf(result.model_dir, tmp_path / "ft")
    assert note is None and path == tmp_path / "ft" / "model.gguf"
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=1, logits_all=True, verbose=False)
    assert llm.metadata.get("general.architecture") == "llama"
    # The GGUF is the fine-tuned model (adapter merged): same tokens, and the same greedy next token as transformers.
    merged = tmp_path / "ft" / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged)
    text = "Is this spam or ham? WIN a free prize now, text 80082. The answer is"
    ids = tokenizer(text)["input_ids"]
    assert llm.tokenize(text.encode(), add_bos=False, special=False) == ids
    with torch.no_grad():
        expected = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    llm.eval(ids)
    assert int(np.argmax(llm.scores[len(ids) - 1])) == expected
