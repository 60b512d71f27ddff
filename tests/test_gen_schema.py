"""Typed output: JSON schemas from fields, and answers repaired, coerced or refused."""

from __future__ import annotations

import pytest

from synthloom.generate.schema import (
    JsonAnswerParser,
    TypedTextParser,
    extract_json,
    match_label,
    output_schema,
)
from synthloom.generate.parse import AnswerParser
from synthloom.generate.steps import output_mode
from synthloom.llm import Completion, InvalidAnswer
from synthloom.recipe import FieldSpec

FIELDS = {
    "question": FieldSpec(description="a question"),
    "year": FieldSpec(description="a year", type="integer"),
    "label": FieldSpec(description="the label", enum=["yes", "no"]),
}


def test_schema_follows_field_types():
    schema = output_schema(FIELDS | {"tags": FieldSpec(description="tags", type="list")})
    assert schema["required"] == ["question", "year", "label", "tags"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["year"] == {"type": "integer"}
    assert props["label"]["enum"] == ["yes", "no"]
    assert props["tags"]["type"] == "array"
    assert props["question"]["minLength"] == 1


def test_output_mode_auto():
    assert output_mode("auto", {"text": FieldSpec(description="t")}) == "text"
    assert output_mode("auto", FIELDS) == "json"
    assert output_mode("auto", {"n": FieldSpec(description="n", type="integer")}) == "json"
    assert output_mode("text", FIELDS) == "text"


@pytest.mark.parametrize("text,repairs", [
    ('{"question": "Why?", "year": 1999, "label": "yes"}', []),
    ('Sure! Here it is: {"question": "Why?", "year": 1999, "label": "yes"} Hope it helps', ["prose_around_json"]),
    ('{"question": "Why?", "year": 1999, "label": "yes"', ["unclosed_json"]),
    ("{'question': 'Why?', 'year': 1999, 'label': 'yes',}", ["loose_json"]),
])
def test_json_is_extracted_and_repaired(text, repairs):
    value, done = extract_json(text)
    assert value == {"question": "Why?", "year": 1999, "label": "yes"}
    assert done == repairs


def test_truncated_string_keeps_what_was_written():
    value, repairs = extract_json('{"question": "Why is the sky')
    assert value == {"question": "Why is the sky"} and repairs == ["unclosed_json"]


def test_parser_coerces_types_and_labels_and_counts_repairs():
    parse = JsonAnswerParser(FIELDS)
    got = parse(Completion('{"Question": "Why?", "year": "1,999", "label": "Yes."}', "stop"))
    assert got == {"question": "Why?", "year": 1999, "label": "yes"}
    assert sorted(got.repairs) == ["key_name", "label", "type"]
    clean = parse(Completion('{"question": "Why?", "year": 2001, "label": "no"}', "stop"))
    assert clean.repairs == ()


@pytest.mark.parametrize("text,match", [
    ('{"question": "Why?", "year": 1999}', "lacks field 'label'"),
    ('{"question": "Why?", "year": "soon", "label": "yes"}', "not a integer"),
    ('{"question": "Why?", "year": 1999, "label": "maybe"}', "not one of the labels"),
    ('{"question": "", "year": 1999, "label": "no"}', "empty"),
    ("no json here", "no JSON object"),
    ('["a list"]', "no JSON object"),
])
def test_parser_refuses_what_it_cannot_read(text, match):
    with pytest.raises(InvalidAnswer, match=match):
        JsonAnswerParser(FIELDS)(Completion(text, "stop"))


def test_json_parser_falls_back_to_the_text_layout():
    fields = {"question": FieldSpec(description="q"), "answer": FieldSpec(description="a")}
    parse = JsonAnswerParser(fields, fallback=AnswerParser(list(fields)))
    got = parse(Completion("question: Why?\nanswer: Because.", "stop"))
    assert got == {"question": "Why?", "answer": "Because."} and got.repairs == ("text_layout",)


def test_typed_text_parser_checks_labels():
    fields = {"label": FieldSpec(description="l", enum=["spam", "ham"])}
    parse = TypedTextParser(fields, AnswerParser(["label"], ["spam", "ham"]))
    assert parse(Completion("The label is HAM", "stop")) == {"label": "ham"}
    with pytest.raises(InvalidAnswer):
        parse(Completion("both spam and ham", "stop"))


def test_match_label():
    labels = ["card_arrival", "card_linking", "spam"]
    assert match_label("card_arrival", labels) == ("card_arrival", False)
    assert match_label("Card arrival", labels) == ("card_arrival", True)
    assert match_label("I think: spam!", labels) == ("spam", True)
    with pytest.raises(InvalidAnswer):
        match_label("card", labels)
