"""Preference pairs: responses per prompt, scored by a position-swapped judge, a rubric or a verifier."""

from __future__ import annotations

import json
import re

import pytest

from synthloom.cli import main
from synthloom.execute.preference import PairSettings, make_pairs, write_pairs
from synthloom.records import DataError, Record

from scripted_model import scripted_backend


def respond(request):
    """Responses: sample 0 is a good answer, sample 1 a bad one ("same" prompts get one answer twice).
    The judge prefers the answer with "good"; on prompts with "biased" it always picks the first shown."""
    text = request.messages[-1]["content"]
    if "Answer 1:" in text:
        first, second = re.search(r"Answer 1:\n(.*?)\n\nAnswer 2:\n(.*?)\n\n", text, re.S).groups()
        if "biased" in text:
            return json.dumps({"winner": "1"})
        if first == second:
            return json.dumps({"winner": "tie"})
        return json.dumps({"winner": "1" if "good" in first else "2"})
    if "Rate the answer" in text:
        return json.dumps({"score": "6" if "good" in text.split("Answer:")[1] else "5"})
    prompt = text
    if "same" in prompt:
        return "one answer for all"
    if "math" in prompt:
        return "The answer is 4." if request.sample == 0 else "The answer is 5."
    return f"a good answer to {prompt}" if request.sample == 0 else f"a poor reply to {prompt}"


PROMPTS = [Record("p0", {"instruction": "Explain rain."}), Record("p1", {"instruction": "Name a biased coin."}),
           Record("p2", {"instruction": "Say the same thing."}), Record("p3", {"instruction": "Describe snow."})]


def test_pairwise_judge_swaps_positions_and_counts_ties_and_disagreements():
    result = make_pairs(PROMPTS, PairSettings(), model=scripted_backend(respond))
    assert result.counts == dict(prompts=4, responses=8, failed_responses=0, pairs=2, ties=2, below_margin=0,
                                 too_few_responses=0, judge_failures=0, disagreements=1)
    by_source = {p.meta["source"]: p.fields for p in result.pairs}
    assert set(by_source) == {"p0", "p3"}
    pair = by_source["p0"]
    assert pair["prompt"] == "Explain rain." and pair["chosen"].startswith("a good answer")
    assert pair["rejected"].startswith("a poor reply") and (pair["score_chosen"], pair["score_rejected"], pair["margin"]) == (1.0, 0.0, 1.0)
    biased = next(j for j in result.judgements if j["prompt"] == 1)
    assert (biased["a_first"], biased["b_first"], biased["score_a"]) == ("1", "1", 0.5)


def test_rubric_scores_and_the_margin_threshold():
    settings = PairSettings(scorer="rubric", min_margin=2)
    result = make_pairs(PROMPTS[:1], settings, model=scripted_backend(respond))
    assert result.counts["below_margin"] == 1 and result.pairs == []
    result = make_pairs(PROMPTS[:1], PairSettings(scorer="rubric", min_margin=1), model=scripted_backend(respond))
    assert [(p.fields["score_chosen"], p.fields["score_rejected"], p.fields["margin"]) for p in result.pairs] == [(6.0, 5.0, 1.0)]


def test_system_prompts_give_one_response_each():
    backend = scripted_backend(respond)
    make_pairs(PROMPTS[:1], PairSettings(system_prompts=("Be brief.", "Be thorough.", "Be formal.")), model=backend)
    responses = [r for r in backend.calls if "Answer 1:" not in r.messages[-1]["content"]]
    assert [r.messages[0]["content"] for r in responses] == ["Be brief.", "Be thorough.", "Be formal."]


def test_math_verifier_scores_pairs_and_pairs_export_as_preference_data(tmp_path):
    records = [Record("m0", {"question": "math: what is 2 + 2?", "reference": "4"})]
    settings = PairSettings(scorer="math_answer")
    result = make_pairs(records, settings, model=scripted_backend(respond))
    (pair,) = result.pairs
    assert (pair.fields["chosen"], pair.fields["rejected"], pair.fields["margin"]) == ("The answer is 4.", "The answer is 5.", 1.0)
    assert result.verifier == {"stage": "math_answer", "seen": 2, "kept": 1, "dropped": 1}
    write_pairs(result, tmp_path / "pairs", settings, "math.jsonl")
    main(["export", str(tmp_path / "pairs"), "--format", "preference", "--out", str(tmp_path / "dpo.jsonl")])
    (row,) = [json.loads(x) for x in (tmp_path / "dpo.jsonl").read_text().splitlines()]
    assert row["prompt"] == [{"role": "user", "content": "math: what is 2 + 2?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "The answer is 4."}] and row["margin"] == 1.0
    main(["export", str(tmp_path / "pairs"), "--format", "preference", "--out", str(tmp_path / "dpo")])
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert "| math_answer | 2 | 1 | 50.0% |" in card and "0 disagreements after the position swap" in card


def test_a_math_prompt_without_a_reference_fails_before_anything_is_asked():
    backend = scripted_backend(respond)
    with pytest.raises(DataError, match="record m0: no 'reference' field"):
        make_pairs([Record("m0", {"question": "math: 1 + 1?"})], PairSettings(scorer="math_answer"), model=backend)
    assert backend.calls == []


def test_pairs_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"instruction": "hi"}) + "\n")
    for args, message in [(["--scorer", "vibes"], "unknown scorer 'vibes'"), (["--system-prompt", "x"], "two or more")]:
        with pytest.raises(SystemExit) as info:
            main(["pairs", str(data), "--out", str(tmp_path / "o"), *args])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and message in err and "\n" not in err
