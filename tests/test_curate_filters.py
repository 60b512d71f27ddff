"""Heuristic and task-aware filters: each decision on small data built here."""

from __future__ import annotations

import json

import pytest

from synthloom.curate import DROP, KEEP, CurationContext, curate
from synthloom.recipe import (
    GarbageFilterSpec,
    LabelLeakFilterSpec,
    LanguageFilterSpec,
    MetaTalkFilterSpec,
    RepetitionFilterSpec,
    SchemaFilterSpec,
)
from synthloom.records import Record


def decisions(specs, texts, context=None, **record_kwargs):
    records = [Record(f"r{i}", {"text": t}, **record_kwargs) for i, t in enumerate(texts)]
    curate(records, specs, context)
    name = specs[-1].stage
    return [r.flags[name] for r in records], records


def test_repetition_filter_drops_loops_and_character_runs():
    flags, records = decisions(
        [RepetitionFilterSpec()],
        [
            "call me when you get home, we can talk about the trip then",
            "buy now buy now buy now buy now buy now buy now",
            "WIN WIN WIN!!!!!!!!!!!!!!!!!!!!",
            "ok",
        ],
    )
    assert flags == [KEEP, DROP, DROP, KEEP]
    assert "3-grams are repeats" in records[1].reasons["repetition_filter"]
    assert "'!' repeated" in records[2].reasons["repetition_filter"]


def test_garbage_filter_catches_controls_mojibake_and_symbols():
    flags, records = decisions(
        [GarbageFilterSpec()],
        [
            "A perfectly normal message, with punctuation.",
            "bell\x07 in the middle",
            "lost \ufffd character",
            "the cafÃ© was closed",
            "$$$ 12345 ### 999 !!!",
            "Ünïcödé letters are fine: café, naïve, 東京",
            "tabs\tand\nnewlines are fine",
        ],
    )
    assert flags == [KEEP, DROP, DROP, DROP, DROP, KEEP, KEEP]
    assert "U+0007" in records[1].reasons["garbage_filter"]
    assert "mojibake" in records[3].reasons["garbage_filter"]


def test_language_filter_keeps_the_wanted_language():
    flags, records = decisions(
        [LanguageFilterSpec(languages=["en"])],
        [
            "Are we still meeting for lunch tomorrow at the usual place?",
            "Wir treffen uns morgen um zwölf Uhr vor dem Bahnhof, bis dann!",
            "¿Nos vemos mañana en la playa con todos los amigos?",
            "ok",
        ],
    )
    assert flags == [KEEP, DROP, DROP, KEEP]
    assert records[1].reasons["language_filter"].startswith("language de")
    assert records[0].scores["language_filter"] > 0.5


def test_meta_talk_filter_catches_talk_about_the_task_and_prompt_echoes():
    prompt = json.dumps([
        {"role": "system", "content": "You write short SMS text messages like the ones people in the UK get."},
        {"role": "user", "content": "Write one example that is spam. Answer with the SMS message only."},
    ])
    texts = [
        "Sure! Here is an SMS message: you won a prize",
        "As an AI language model, I cannot write spam.",
        "Here's a spam text message for you: claim now",
        "You write short SMS text messages like the ones people in the UK get",
        "Congratulations, you have won a free cruise, call 0800 123 456 now",
    ]
    flags, records = decisions([MetaTalkFilterSpec()], texts, prompt=prompt)
    assert flags == [DROP, DROP, DROP, DROP, KEEP]
    assert "in the prompt" in records[3].reasons["meta_talk_filter"]
    flags, _ = decisions([MetaTalkFilterSpec(patterns=[r"\bfree cruise\b"], builtin_patterns=False)], texts)
    assert flags == [KEEP, KEEP, KEEP, KEEP, DROP]


def test_meta_talk_filter_leaves_copies_of_demonstrations_to_novelty_unless_told():
    prompt = json.dumps([
        {"role": "system", "content": "You write questions customers ask their bank."},
        {"role": "user", "content": "Write one question about: card arrival."},
        {"role": "assistant", "content": "When will my new card arrive in the post?"},
        {"role": "user", "content": "Write one question about: card arrival."},
    ])
    texts = ["When will my new card arrive in the post?", "Write one question about card arrival please"]
    flags, _ = decisions([MetaTalkFilterSpec()], texts, prompt=prompt)
    assert flags == [KEEP, DROP]
    flags, records = decisions([MetaTalkFilterSpec(echo_of="prompt")], texts, prompt=prompt)
    assert flags == [DROP, DROP] and "in the prompt" in records[0].reasons["meta_talk_filter"]


def test_label_leak_filter_matches_whole_label_names():
    records = [
        Record("a", {"text": "This SPAM message says you won"}, label="spam"),
        Record("b", {"text": "stop sending me spam please"}, label="ham"),
        Record("c", {"text": "my card arrival is late"}, label="card_arrival"),
        Record("d", {"text": "where is my card?"}, label="card_arrival"),
        Record("e", {"text": "spammy offers all day"}, label="spam"),
        Record("f", {"text": "free entry to win a prize"}, label="spam"),
    ]
    curate(records, [LabelLeakFilterSpec(words={"spam": ["prize"]})], CurationContext(labels=["spam", "ham", "card_arrival"]))
    assert [r.flags["label_leak_filter"] for r in records] == [DROP, KEEP, DROP, KEEP, KEEP, DROP]
    assert records[2].reasons["label_leak_filter"] == "names its label 'card_arrival': 'card arrival'"


def test_schema_filter_checks_fields_labels_types_and_patterns():
    records = [
        Record("ok", {"question": "2+2?", "answer": "4"}, label="math"),
        Record("empty", {"question": "  ", "answer": "4"}, label="math"),
        Record("label", {"question": "hi?", "answer": "4"}, label="poetry"),
        Record("type", {"question": "2+3?", "answer": "five"}, label="math"),
        Record("pattern", {"question": "2+3", "answer": "5"}, label="math"),
    ]
    spec = SchemaFilterSpec(types={"answer": "int"}, patterns={"question": r".*\?"})
    curate(records, [spec], CurationContext(labels=["math", "history"]))
    assert [r.flags["schema_filter"] for r in records] == [KEEP, DROP, DROP, DROP, DROP]
    assert records[1].reasons["schema_filter"] == "field 'question' is missing or empty"
    assert "not one of the task's labels" in records[2].reasons["schema_filter"]
    assert "is not int" in records[3].reasons["schema_filter"]


def test_funnel_counts_and_example_reasons():
    records = [Record(f"r{i}", {"text": t}) for i, t in enumerate(["fine text here", "bell\x07", "bad \ufffd"])]
    result = curate(records, [GarbageFilterSpec()])
    step = result.funnel[0].to_json()
    assert (step["seen"], step["kept"], step["dropped"]) == (3, 1, 2)
    assert [e["id"] for e in step["examples"]] == ["r1", "r2"]
    assert all(e["flag"] == DROP and e["reason"] for e in step["examples"])


@pytest.mark.parametrize(
    "spec,flag", [(RepetitionFilterSpec(), KEEP), (GarbageFilterSpec(), DROP), (MetaTalkFilterSpec(), KEEP)]
)
def test_empty_text(spec, flag):
    flags, _ = decisions([spec], [""])
    assert flags == [flag]
