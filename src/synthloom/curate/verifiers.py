"""Verifiers: code, SQL and math answers checked by running them, in the sandbox, never in this process.

- `python_exec`: the record's code followed by its tests (assert statements,
  the record's own and the stage's); kept when the program exits cleanly.
- `sql_exec`: the record's query against a SQLite database opened read-only;
  kept when its rows equal a reference query's (as a multiset, or in order
  when the reference says ORDER BY), or, without a reference, when it
  returns any.
- `math_answer`: the final answer (\\boxed{}, "the answer is ...", else the
  last number) compared with the reference by sympy, or, without one, with
  the record's sampled answers (kept when more than `min_agreement` agree).
  sympy runs on model text only inside the sandbox, with a timeout per pair.

Each writes score 1 (verified) or 0, flag keep or drop, and a reason that
names the failing assertion, the error, or the two answers; `meta[stage]`
holds the status and the program's output. A record that cannot run keeps
its reason and the others go on.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..recipe import MathAnswerSpec, PythonExecSpec, SqlExecSpec
from ..records import DataError, Record
from ..sandbox import Limits, Program, Result, Sandbox
from .base import DROP, KEEP, SpecStage, stage_for

_HERE = Path(__file__).parent
_FENCE = re.compile(r"```(?:python|py|sql|sqlite)?[ \t]*\n(.*?)```", re.S | re.I)


def strip_fences(text: str) -> str:
    """The code inside the first ``` block, or the text itself when there is none."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


class _ExecStage(SpecStage):
    """The shared part: the sandbox the spec asks for, and the fields every record must have."""

    def limits(self, **overrides: Any) -> Limits:
        s = self.spec
        values = dict(wall_seconds=s.timeout, cpu_seconds=s.cpu_seconds, memory_mb=s.memory_mb)
        values.update(overrides)
        return Limits(**values)

    def sandbox(self, **overrides: Any) -> Sandbox:
        return Sandbox(self.limits(**overrides), parallel=self.spec.parallel)

    def check(self, records: Sequence[Record]) -> None:
        """Before anything runs: every record has the fields this stage reads (else one DataError)."""
        for name in self.spec.fields_read():
            for record in records:
                if record.fields.get(name) in (None, ""):
                    raise DataError(f"record {record.id}: no {name!r} field, which stage {self.name} reads")

    def field_value(self, record: Record, name: str | None) -> Any:
        return record.fields.get(name) if name else None

    def missing(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """(records with every field this stage reads, the others, each already dropped with its reason)."""
        ready, missing = [], []
        for record in records:
            absent = [n for n in self.spec.fields_read() if record.fields.get(n) in (None, "")]
            if absent:
                _keep(record, self.name, False, f"no {absent[0]!r} field", {"status": "not run"})
                missing.append(record)
            else:
                ready.append(record)
        return ready, missing


def _keep(record: Record, stage: str, ok: bool, reason: str, meta: dict[str, Any]) -> None:
    record.decide(stage, KEEP if ok else DROP, 1.0 if ok else 0.0, reason)
    record.meta[stage] = meta


def failure_reason(result: Result, program: str, tests_from: int) -> str:
    """Why a program failed, in one line: the failing assertion's source line, the error, or the limit."""
    if result.status in ("timeout", "killed", "blocked"):
        return f"{result.status}: {result.error}"
    lines = re.findall(r'File "main\.py", line (\d+)', result.stderr)
    source = program.splitlines()
    if lines and 0 < int(lines[-1]) <= len(source):
        n = int(lines[-1])
        where = "test" if n > tests_from else "code"
        return f"{where} line {n - tests_from if n > tests_from else n}: {source[n - 1].strip()} -> {result.error}"
    return result.error or f"exit status {result.exit_code}"


@stage_for(PythonExecSpec)
class PythonExec(_ExecStage):
    name = "python_exec"
    record_local = True

    def program(self, record: Record) -> tuple[str, int]:
        """(the code then its tests, the number of lines before the tests)."""
        code = strip_fences(str(record.fields.get(self.field) or "")).rstrip("\n")
        tests = [str(t) for t in (self.field_value(record, self.spec.tests_field), self.spec.tests) if t]
        tests_text = "\n".join(strip_fences(t).strip("\n") for t in tests)
        return code + "\n" + tests_text + "\n", code.count("\n") + 1

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        ready, _ = self.missing(records)
        programs = [self.program(r) for r in ready]
        with self.sandbox() as box:
            results = box.run_many([Program(text) for text, _ in programs])
        for record, (text, tests_from), result in zip(ready, programs, results):
            meta = {"status": result.status, "stdout": result.stdout[:2000], "error": result.error,
                    "seconds": round(result.duration, 3)}
            reason = "" if result.ok else failure_reason(result, text, tests_from)
            _keep(record, self.name, result.ok, reason, meta)
        return records


# -- SQL ------------------------------------------------------------------------------------

_ORDER_BY = re.compile(r"\border\s+by\b", re.I)


def _row_key(row: list[Any]) -> tuple:
    return tuple(round(c, 6) if isinstance(c, float) else c for c in row)


def same_rows(got: dict[str, Any], want: dict[str, Any], ordered: bool) -> bool:
    a, b = [_row_key(r) for r in got["rows"]], [_row_key(r) for r in want["rows"]]
    return a == b if ordered else Counter(a) == Counter(b)


def row_difference(got: dict[str, Any], want: dict[str, Any], ordered: bool) -> str:
    """Why two results differ, in one line: the first extra or missing row, or the first row out of order."""
    a, b = Counter(map(_row_key, got["rows"])), Counter(map(_row_key, want["rows"]))
    head = f"{len(got['rows'])} rows, the reference {len(want['rows'])}"
    if got["more"] or want["more"]:
        return f"{head}: more than max_rows, not compared"
    if extra := list((a - b).elements()):
        return f"{head}: row {list(extra[0])} is not in the reference's"
    if missing := list((b - a).elements()):
        return f"{head}: the reference's row {list(missing[0])} is missing"
    i = next(i for i, (x, y) in enumerate(zip(got["rows"], want["rows"])) if _row_key(x) != _row_key(y))
    return f"{head}: same rows in another order (the reference says ORDER BY); row {i + 1} is {got['rows'][i]}"


@stage_for(SqlExecSpec)
class SqlExec(_ExecStage):
    name = "sql_exec"
    record_local = True

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        worker = (_HERE / "_sql_worker.py").read_text(encoding="utf-8")
        ready, _ = self.missing(records)
        with self.sandbox() as box:
            database = box.share(self.spec.database)
            jobs = []
            for record in ready:
                query = strip_fences(str(record.fields.get(self.field) or "")).strip()
                reference = self.field_value(record, self.spec.reference_field)
                job = {"database": database, "query": query, "max_rows": self.spec.max_rows,
                       "reference": strip_fences(str(reference)).strip() if reference else None}
                jobs.append(Program(worker, {"job.json": json.dumps(job)}))
            results = box.run_many(jobs)
        for record, job, result in zip(ready, jobs, results):
            self.decide(record, json.loads(job.files["job.json"]), result)
        return records

    def decide(self, record: Record, job: dict[str, Any], result: Result) -> None:
        meta: dict[str, Any] = {"status": result.status, "error": result.error}
        if not result.ok:
            _keep(record, self.name, False, f"{result.status}: {result.error}", meta)
            return
        answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        got = answers[0]
        if "error" in got:
            meta["error"] = got["error"]
            _keep(record, self.name, False, f"query failed: {got['error']}", meta)
            return
        meta["rows"] = len(got["rows"])
        if job["reference"] is None:
            ok = bool(got["rows"])
            _keep(record, self.name, ok, "" if ok else "the query returns no rows", meta)
            return
        want = answers[1]
        if "error" in want:
            _keep(record, self.name, False, f"reference query failed: {want['error']}", meta)
            return
        ordered = bool(_ORDER_BY.search(job["reference"]))
        ok = same_rows(got, want, ordered) and not got["more"] and not want["more"]
        reason = "" if ok else row_difference(got, want, ordered)
        _keep(record, self.name, ok, reason, meta)


# -- math -----------------------------------------------------------------------------------

_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*([^\n]+)", re.I)
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]|[A-Za-z]{5,}")  # words in a row: a sentence, not an answer
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}), braces matched."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None


def final_answer(text: Any) -> str | None:
    """A solution's final answer: \\boxed{}, "the answer is X", a short answer as a whole,
    what follows the last "=" of the last line, else the last number."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    boxed = _boxed(text)
    if boxed:
        return boxed
    matches = _ANSWER_IS.findall(text)
    if matches:
        return matches[-1].strip().rstrip(".").strip("$ ")
    if "\n" not in text and len(text) <= 40 and not _PROSE.search(re.sub(r"\\[A-Za-z]+", " ", text)):
        return text.strip("$ ")
    last = text.splitlines()[-1]
    if "=" in last:
        return last.rsplit("=", 1)[1].strip().rstrip(".").strip("$ ") or None
    numbers = _NUMBER.findall(text)
    return numbers[-1].rstrip(",") if numbers else None


def reference_answer(text: Any) -> str:
    """A reference is taken as written, unless it is a worked solution with a \\boxed{} answer."""
    text = str(text).strip()
    return _boxed(text) or text


@stage_for(MathAnswerSpec)
class MathAnswer(_ExecStage):
    name = "math_answer"
    record_local = True
    chunk = 64  # pairs per child: sympy's import is paid once per chunk

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        pairs: list[tuple[str, str]] = []
        plans: list[tuple[Record, str | None, str, list[int]]] = []  # record, answer, mode, pair indexes
        for record in records:
            answer = final_answer(record.fields.get(self.field))
            reference = self.field_value(record, self.spec.reference_field)
            samples = self.field_value(record, self.spec.samples_field)
            if answer is None:
                plans.append((record, None, "none", []))
            elif reference is not None and str(reference).strip():
                ref = reference_answer(reference)
                plans.append((record, answer, "reference", [len(pairs)]))
                pairs.append((answer, ref))
            elif isinstance(samples, (list, tuple)) and samples:
                sampled = [final_answer(s) for s in samples]
                plans.append((record, answer, "samples", list(range(len(pairs), len(pairs) + len(sampled)))))
                pairs.extend((answer, s if s is not None else "") for s in sampled)
            else:
                plans.append((record, answer, "nothing", []))
        verdicts = self.compare(pairs)
        for record, answer, mode, indexes in plans:
            self.decide(record, answer, mode, [(pairs[i][1], verdicts[i]) for i in indexes])
        return records

    def decide(self, record: Record, answer: str | None, mode: str, results: list[tuple[str, Any]]) -> None:
        meta: dict[str, Any] = {"answer": answer}
        if mode == "none":
            _keep(record, self.name, False, "no final answer found", meta)
            return
        if mode == "nothing":
            _keep(record, self.name, False, "no reference and no sampled answers to compare with", meta)
            return
        if mode == "reference":
            (ref, verdict), = results
            meta["reference"] = ref
            if verdict is True:
                _keep(record, self.name, True, "", meta)
            else:
                why = verdict if isinstance(verdict, str) else "not equal"
                _keep(record, self.name, False, f"answer {answer!r} vs reference {ref!r}: {why}", meta)
            return
        agree = sum(verdict is True for _, verdict in results)
        share = agree / len(results)
        meta["agreeing_samples"] = f"{agree}/{len(results)}"
        ok = share > self.spec.min_agreement
        reason = "" if ok else f"answer {answer!r} agrees with {agree} of {len(results)} sampled answers"
        record.decide(self.name, KEEP if ok else DROP, share, reason)
        record.meta[self.name] = meta

    def compare(self, pairs: list[tuple[str, str]]) -> list[Any]:
        """Verdict per pair (True, False, or why not compared), from sandboxed sympy; hung chunks resume."""
        verdicts: list[Any] = [None] * len(pairs)
        if importlib.util.find_spec("sympy") is None:
            raise ImportError("the math_answer stage needs sympy: pip install 'synthloom[verify]'")
        worker = (_HERE / "_math_worker.py").read_text(encoding="utf-8")
        todo = list(range(len(pairs)))
        with self.sandbox() as box:
            while todo:
                chunks = [todo[i : i + self.chunk] for i in range(0, len(todo), self.chunk)]
                size = max(len(c) for c in chunks)  # a child's budget: sympy's import, then `timeout` per pair
                cpu, wall = 10 + self.spec.timeout * size, 30 + self.spec.timeout * size
                programs = [
                    Program(worker, {"pairs.json": json.dumps({"seconds": self.spec.timeout,
                                                               "pairs": [pairs[i] for i in c]})})
                    for c in chunks
                ]
                results = box.run_many(programs, self.limits(wall_seconds=wall, cpu_seconds=cpu))
                todo = []
                for chunk, result in zip(chunks, results):
                    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()[:1] in '"tf']
                    for i, verdict in zip(chunk, lines):
                        verdicts[i] = verdict
                    if not lines and result.status == "error":  # the worker itself failed: no pair will do better
                        raise RuntimeError(f"math_answer: the sympy worker failed: {result.error}")
                    if len(lines) < len(chunk):  # the pair after the last answer stopped the child
                        verdicts[chunk[len(lines)]] = f"sympy stopped: {result.status} {result.error}".strip()
                        todo.extend(chunk[len(lines) + 1 :])
        return verdicts
