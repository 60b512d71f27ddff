"""Planning and parsing: deterministic draws, label quotas, prompts, answer cleaning."""

from __future__ import annotations

import collections
import json

import pytest

from synthloom.generate import AnswerParser, Generator, PromptBuilder, label_quota, load_support
from synthloom.llm import Completion, InvalidAnswer
from synthloom.recipe import recipe_from_dict
from synthloom.records import Record


def make_recipe(tmp_path, **over):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        "".join(json.dumps({"text": f"{lab} seed {i}", "label": lab}) + "\n" for lab in "ab" for i in range(4))
    )
    data = {
        "name": "t",
        "model": {"backend": "fake"},
        "task": {"description": "short notes", "labels": {"a": "about apples", "b": "about bees"}},
        "conditions": {"topic": ["x", "y", "z"], "tone": {"calm": 3, "loud": 1}},
        "demonstrations": {"path": str(seeds), "k": 2},
        "generation": {"records": 40, "seed": 5},
    }
    data.update(over)
    return recipe_from_dict(data, base_dir=tmp_path)


def test_label_quota_gives_exact_shares():
    labels = label_quota(["a", "b", "c"], {"a": 2, "b": 1, "c": 1}, 10, seed=0)
    assert collections.Counter(labels) == {"a": 5, "b": 3, "c": 2}
    assert labels == label_quota(["a", "b", "c"], {"a": 2, "b": 1, "c": 1}, 10, seed=0)
    assert labels != label_quota(["a", "b", "c"], {"a": 2, "b": 1, "c": 1}, 10, seed=1)


def test_plan_is_deterministic_and_independent_of_limit(tmp_path):
    recipe = make_recipe(tmp_path)
    gen = Generator(recipe, load_support(recipe))
    full = gen.plan()
    again = Generator(recipe, load_support(recipe)).plan(limit=10)
    assert [p.request for p in full[:10]] == [p.request for p in again]
    assert len({p.request.seed for p in full}) == len(full)
    assert collections.Counter(p.label for p in full) == {"a": 20, "b": 20}
    tones = collections.Counter(p.conditions["tone"] for p in full)
    assert tones["calm"] > tones["loud"]


def test_demonstrations_match_the_record_label(tmp_path):
    recipe = make_recipe(tmp_path)
    plans = Generator(recipe, load_support(recipe)).plan()
    for plan in plans:
        assert len(plan.demonstrations) == 2
        assert {d.label for d in plan.demonstrations} == {plan.label}


def test_prompt_contains_task_label_conditions_and_demos(tmp_path):
    recipe = make_recipe(tmp_path)
    plan = Generator(recipe, load_support(recipe)).plan(limit=1)[0]
    messages = plan.request.messages
    assert messages[0]["role"] == "system" and "short notes" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == plan.demonstrations[0].fields["text"]
    last = messages[-1]["content"]
    assert plan.label in last
    assert ("about apples" if plan.label == "a" else "about bees") in last
    # with demonstrations every user turn reads the same; the conditions go to the system message
    assert messages[1]["content"] == messages[3]["content"] == last
    assert f"topic: {plan.conditions['topic']}; tone: {plan.conditions['tone']}." in messages[0]["content"]


def test_zero_shot_prompt_lists_conditions_in_the_instruction(tmp_path):
    recipe = make_recipe(tmp_path, demonstrations=None)
    plan = Generator(recipe).plan(limit=1)[0]
    assert [m["role"] for m in plan.request.messages] == ["system", "user"]
    assert f"Topic: {plan.conditions['topic']}" in plan.request.messages[-1]["content"]
    assert "topic" not in plan.request.messages[0]["content"]


def test_template_override_is_sandboxed(tmp_path):
    from synthloom.templating import TemplateError

    recipe = make_recipe(
        tmp_path,
        generation={"records": 2, "templates": {"instruction": "{{ label.__class__.__mro__ }}"}},
    )
    with pytest.raises(TemplateError):
        Generator(recipe, load_support(recipe)).plan()
    recipe = make_recipe(tmp_path, generation={"records": 2, "templates": {"instruction": "Say {{ nope }}"}})
    with pytest.raises(TemplateError, match="undefined"):
        Generator(recipe, load_support(recipe)).plan()


@pytest.mark.parametrize("raw,expected", [
    ("Hello there, see you at 5", "Hello there, see you at 5"),
    ('"Quoted message here."', "Quoted message here."),
    ("Message: Call me back asap", "Call me back asap"),
    ("spam: WIN a prize now!!", "WIN a prize now!!"),
    ("First paragraph here.\n\nAnd some commentary about it.", "First paragraph here."),
    ("  lots   of\n spaces  ", "lots of spaces"),
])
def test_single_field_answers_are_cleaned(raw, expected):
    parse = AnswerParser(["text"], ["spam", "ham"])
    assert parse(Completion(raw, "stop")) == {"text": expected}


def test_truncated_answer_is_cut_to_its_last_sentence():
    parse = AnswerParser(["text"])
    text = "This is the first sentence. And here is a second one that runs on and on without"
    assert parse(Completion(text, "length")) == {"text": "This is the first sentence."}
    with pytest.raises(InvalidAnswer):
        parse(Completion("no sentence ends here at all and it goes", "length"))


def test_empty_answer_is_invalid():
    with pytest.raises(InvalidAnswer):
        AnswerParser(["text"])(Completion("  ", "stop"))


def test_multi_field_answers():
    parse = AnswerParser(["question", "answer"])
    got = parse(Completion("question: What is 2+2?\nanswer: 4\nsome trailing line", "stop"))
    assert got == {"question": "What is 2+2?", "answer": "4 some trailing line"}
    got = parse(Completion("**Question**: Why?\n**Answer**: Because.\nquestion: another", "stop"))
    assert got == {"question": "Why?", "answer": "Because."}
    with pytest.raises(InvalidAnswer, match="answer"):
        parse(Completion("question: only this", "stop"))


def test_prompt_builder_multi_field_demo_layout():
    from synthloom.recipe import TaskSpec

    task = TaskSpec(description="QA pairs", fields={"question": "a question", "answer": "its answer"})
    demo = Record("d1", {"question": "Q?", "answer": "A."})
    messages = PromptBuilder(task).messages(None, {}, [demo])
    assert messages[2]["content"] == "question: Q?\nanswer: A."
    assert "question: <a question>" in messages[-1]["content"]
