"""The verifier stages on small hand-made records: right and wrong code, SQL and math, from Python and the CLI.

Everything runs for real: programs in the sandbox's children, queries on a
real SQLite file, sympy in a child. Bad inputs (a missing or non-SQLite
database, a record without the field a stage reads) stop before anything
runs, with one line and exit status 2.
"""

from __future__ import annotations

import json
import sqlite3

import pyarrow.parquet as pq
import pytest

from synthloom.curate import curate, final_answer
from synthloom.recipe import MathAnswerSpec, PythonExecSpec, RecipeError, SqlExecSpec, load_curation_file
from synthloom.records import DataError, Record

from conftest import run_cli

FAST = {"timeout": 20, "cpu_seconds": 1, "parallel": 2}


def rec(id, **fields):
    return Record(id=id, fields=fields)


@pytest.fixture
def shop_db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT);"
        "INSERT INTO customers VALUES (1, 'Ann', 'Leeds'), (2, 'Bob', 'York'), (3, 'Cy', 'Leeds');"
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, total REAL);"
        "INSERT INTO orders VALUES (1, 1, 9.5), (2, 1, 20.0), (3, 3, 4.25);"
    )
    con.commit()
    con.close()
    return path


def decisions(records, stage):
    return {r.id: (r.flags[stage], r.reasons.get(stage, "")) for r in records}


# -- python_exec -----------------------------------------------------------------------------


def test_python_exec_passes_right_code_and_names_the_failing_assertion():
    records = [
        rec("right", code="def add(a, b):\n    return a + b", tests="assert add(1, 2) == 3\nassert add(-1, 1) == 0"),
        rec("wrong", code="```python\ndef add(a, b):\n    return a - b\n```", tests="assert add(1, 1) == 0\nassert add(1, 2) == 3"),
        rec("broken", code="def add(a, b) return a", tests="assert add(1, 2) == 3"),
        rec("loops", code="while True:\n    pass", tests=""),
        rec("prints", code="print('hello')", tests=None),
    ]
    result = curate(records, [PythonExecSpec(**FAST)])
    got = decisions(records, "python_exec")
    assert [r.id for r in result.kept] == ["right", "prints"]
    assert got["wrong"] == ("drop", "test line 2: assert add(1, 2) == 3 -> AssertionError")
    assert got["broken"][1].startswith("code line 1: def add(a, b) return a -> SyntaxError")
    assert got["loops"][1].startswith("killed:") and "cpu" in got["loops"][1]
    assert records[4].meta["python_exec"]["stdout"] == "hello\n"
    assert records[0].scores["python_exec"] == 1.0 and records[1].scores["python_exec"] == 0.0


def test_python_exec_runs_the_stages_tests_after_the_records_own():
    spec = PythonExecSpec(tests="assert square(3) == 9", tests_field=None, **FAST)
    records = [rec("a", code="def square(x):\n    return x * x"), rec("b", code="def square(x):\n    return x + x")]
    curate(records, [spec])
    assert decisions(records, "python_exec") == {
        "a": ("keep", ""), "b": ("drop", "test line 1: assert square(3) == 9 -> AssertionError")}


def test_a_record_without_the_code_field_is_an_error_before_anything_runs():
    records = [rec("ok", code="print(1)"), rec("empty-7", text="no code here")]
    with pytest.raises(DataError, match="record empty-7: no 'code' field, which stage python_exec reads"):
        curate(records, [PythonExecSpec(**FAST)])
    curate(records, [PythonExecSpec(**FAST)], check=False)  # mid-run: that record is dropped, the rest go on
    assert decisions(records, "python_exec") == {"ok": ("keep", ""), "empty-7": ("drop", "no 'code' field")}


# -- sql_exec --------------------------------------------------------------------------------


def test_sql_exec_compares_with_the_reference_query(shop_db):
    ref = "SELECT name FROM customers WHERE city = 'Leeds'"
    records = [
        rec("same", sql="SELECT name FROM customers WHERE id IN (1, 3) ORDER BY name DESC", ref=ref),
        rec("more", sql="SELECT name FROM customers", ref=ref),
        rec("typo", sql="SELECT nme FROM customers", ref=ref),
        rec("write", sql="DELETE FROM customers", ref=ref),
        rec("order", sql="SELECT name FROM customers ORDER BY name DESC", ref="SELECT name FROM customers ORDER BY name"),
        rec("sum", sql="SELECT customer, SUM(total) FROM orders GROUP BY customer",
            ref="SELECT customer, SUM(total) FROM orders GROUP BY 1"),
    ]
    spec = SqlExecSpec(database=str(shop_db), reference_field="ref", **FAST)
    result = curate(records, [spec])
    got = decisions(records, "sql_exec")
    assert sorted(r.id for r in result.kept) == ["same", "sum"]
    assert got["more"] == ("drop", "3 rows, the reference 2: row ['Bob'] is not in the reference's")
    assert got["typo"] == ("drop", "query failed: OperationalError: no such column: nme")
    assert got["write"] == ("drop", "query failed: OperationalError: attempt to write a readonly database")
    assert "another order" in got["order"][1]
    with sqlite3.connect(shop_db) as con:
        assert con.execute("SELECT COUNT(*) FROM customers").fetchone() == (3,)


def test_sql_exec_without_a_reference_checks_for_rows(shop_db):
    records = [rec("rows", sql="SELECT * FROM orders"), rec("none", sql="SELECT * FROM orders WHERE total > 100")]
    curate(records, [SqlExecSpec(database=str(shop_db), **FAST)])
    assert decisions(records, "sql_exec") == {"rows": ("keep", ""), "none": ("drop", "the query returns no rows")}
    assert records[0].meta["sql_exec"]["rows"] == 3


def test_a_missing_or_non_sqlite_database_is_a_recipe_error(tmp_path):
    stages = tmp_path / "stages.yaml"
    stages.write_text("text_field: sql\ncuration:\n  - stage: sql_exec\n    database: nowhere.sqlite\n")
    with pytest.raises(RecipeError) as err:
        load_curation_file(stages)
    assert str(err.value) == f"{stages}:4: curation[0].database: SQLite database not found: {tmp_path / 'nowhere.sqlite'}"
    (tmp_path / "nowhere.sqlite").write_text("name,age\nann,3\n")
    with pytest.raises(RecipeError, match=r"stages.yaml:4: curation\[0\].database: not a SQLite database"):
        load_curation_file(stages)


# -- math_answer -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, answer", [
    ("so x = 4 and the final answer is \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
    ("Adding them up, the answer is 42.", "42"),
    ("She has 5 apples, buys 7 more, so 12 apples in all.", "12"),
    ("(1, 2)", "(1, 2)"),
    ("no number here at all, only words", None),
])
def test_final_answers_are_parsed(text, answer):
    assert final_answer(text) == answer


def test_math_answer_compares_with_the_reference_by_sympy():
    records = [
        rec("frac", answer="The answer is \\boxed{\\frac{1}{2}}", reference="0.5"),
        rec("root", answer="so x = 2\\sqrt{2}", reference="\\sqrt{8}"),
        rec("poly", answer="\\boxed{x^2 + 2x + 1}", reference="(x+1)^2"),
        rec("wrong", answer="the answer is 7", reference="8"),
        rec("none", answer="I am not sure.", reference="3"),
        rec("huge", answer="\\boxed{10**10**10**10}", reference="3"),
    ]
    result = curate(records, [MathAnswerSpec(timeout=2, parallel=1)])
    got = decisions(records, "math_answer")
    assert sorted(r.id for r in result.kept) == ["frac", "poly", "root"]
    assert got["wrong"] == ("drop", "answer '7' vs reference '8': not equal")
    assert got["none"] == ("drop", "no final answer found")
    assert got["huge"][0] == "drop" and "sympy" in got["huge"][1]


def test_math_answer_without_a_reference_takes_the_samples_majority():
    samples = ["so it is 12", "\\boxed{12.0}", "the answer is 13"]
    records = [rec("major", answer="12", samples=samples), rec("minor", answer="13", samples=samples)]
    curate(records, [MathAnswerSpec(reference_field=None, samples_field="samples", parallel=1)])
    assert decisions(records, "math_answer") == {
        "major": ("keep", ""), "minor": ("drop", "answer '13' agrees with 1 of 3 sampled answers")}
    assert records[0].scores["math_answer"] == pytest.approx(2 / 3)


def test_math_answer_needs_something_to_compare_with():
    with pytest.raises(ValueError, match="reference_field or samples_field"):
        MathAnswerSpec(reference_field=None)


# -- through `synthloom curate` ----------------------------------------------------------------


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_a_record_without_the_field_is_one_line_with_exit_2(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", [{"code": "print(1)"}, {"code": None}])
    stages = tmp_path / "stages.yaml"
    stages.write_text("text_field: code\ncuration:\n  - stage: python_exec\n")
    done = run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "o"), "--no-progress")
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: record data-1: no 'code' field, which stage python_exec reads")
    assert not (tmp_path / "o").exists()


def test_the_example_stages_file_runs_and_says_why(tmp_path):
    """examples/verify_stages.yaml on examples/data/verify.jsonl, as its header says to run it."""
    from conftest import ROOT

    done = run_cli("curate", str(ROOT / "examples" / "data" / "verify.jsonl"), "--stages",
                   str(ROOT / "examples" / "verify_stages.yaml"), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "1 of 7 records kept" in done.stdout
    rejected = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()}
    assert "AssertionError" in rejected["ann-total"]["python_exec_reason"]
    assert rejected["hull-orders"]["python_exec_reason"].startswith("killed:")
    assert rejected["york-share"]["python_exec_reason"].startswith("blocked:")
    assert "readonly database" in rejected["cleanup"]["sql_exec_reason"]
    assert rejected["mean-order"]["math_answer_reason"] == "answer '14.95' vs reference '13.95': not equal"
    kept = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    assert [r["id"] for r in kept] == ["leeds-count"]
    assert [kept[0][f"{s}_score"] for s in ("python_exec", "sql_exec", "math_answer")] == [1.0, 1.0, 1.0]
    funnel = json.loads((tmp_path / "out" / "curation.json").read_text())["curation"]["funnel"]
    assert [(s["stage"], s["seen"], s["kept"]) for s in funnel] == [
        ("python_exec", 7, 4), ("sql_exec", 4, 2), ("math_answer", 2, 1)]


def test_a_recipe_run_verifies_generated_code_and_goes_on(tmp_path):
    """In `synthloom run`, generated records go through python_exec: wrong code is dropped with its reason."""
    import synthloom

    right = json.dumps({"code": "def double(x):\n    return 2 * x", "tests": "assert double(3) == 6"})
    wrong = json.dumps({"code": "def double(x):\n    return x + x + 1", "tests": "assert double(3) == 6"})
    recipe = tmp_path / "code.yaml"
    recipe.write_text(
        "name: code_check\nmodel:\n  backend: fake\n  responses:\n"
        f"    - {json.dumps(right)}\n    - {json.dumps(wrong)}\n"
        "task:\n  description: a small Python function with tests\n"
        "  fields: {code: a Python function, tests: assert statements that check it}\n"
        "generation: {records: 4}\ncuration:\n  - stage: python_exec\n    cpu_seconds: 1\nevaluation: []\n"
    )
    result = synthloom.run(recipe, out=tmp_path / "out", progress=False)
    assert result.manifest["counts"]["curated"] == 2 and result.manifest["counts"]["rejected"] == 2
    step, = result.manifest["curation"]["funnel"]
    assert step["stage"] == "python_exec" and step["dropped"] == 2
    assert step["examples"][0]["reason"] == "test line 1: assert double(3) == 6 -> AssertionError"
