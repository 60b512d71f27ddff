"""Runs in the sandbox, never imported: describe Python tools, or call one.

Reads `job.json` beside it:
  {"mode": "describe", "refs": ["/path/file.py:fn" or "pkg.mod:fn", ...]}
  {"mode": "call", "ref": "...", "arguments": {...}}
and prints one JSON line per tool (describe) or one line (call):
  {"ok": true, "schema": {...}, "description": "..."} / {"ok": true, "result": ...}
  {"ok": false, "error": "one line"}
"""

import importlib
import importlib.util
import inspect
import json
import re
import sys
import traceback


def load(ref):
    module, _, name = ref.rpartition(":")
    if module.endswith(".py") or "/" in module:
        folder = module.rsplit("/", 1)[0]
        sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(module.rsplit("/", 1)[-1][:-3], module)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    fn = getattr(mod, name, None)
    if fn is None or not callable(fn):
        raise AttributeError(f"{module} has no function {name!r}")
    return fn


def docstring_parts(fn):
    """(summary, {parameter: description}) from a Google- or reST-style docstring."""
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n", 1)[0].strip()
    params = {}
    section = re.split(r"^\s*(?:Args|Arguments|Parameters):\s*$", doc, maxsplit=1, flags=re.M)
    if len(section) == 2:
        for m in re.finditer(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section[1], flags=re.M):
            params[m.group(1)] = m.group(2).strip()
    for m in re.finditer(r":param (\w+):\s*(.+)", doc):
        params[m.group(1)] = m.group(2).strip()
    return summary, params


def describe(ref):
    from pydantic import TypeAdapter

    fn = load(ref)
    schema = TypeAdapter(fn).json_schema()
    summary, params = docstring_parts(fn)
    for name, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        if name in params and "description" not in prop:
            prop["description"] = params[name]
    schema.pop("title", None)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return {"ok": True, "name": fn.__name__, "description": summary, "schema": schema}


def call(ref, arguments):
    from pydantic import TypeAdapter, validate_call

    fn = validate_call(load(ref))
    result = fn(**arguments)
    try:
        value = TypeAdapter(type(result)).dump_python(result, mode="json")
        json.dumps(value)
    except Exception:
        value = str(result)
    return {"ok": True, "result": value}


def one_line(exc):
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())[:500]


def main():
    out_stream, sys.stdout = sys.stdout, sys.stderr  # what a tool prints must not mix with the answer
    with open("job.json", encoding="utf-8") as f:
        job = json.load(f)
    if job["mode"] == "describe":
        for ref in job["refs"]:
            try:
                out = describe(ref)
            except BaseException as exc:  # noqa: BLE001 - reported, the next tool goes on
                out = {"ok": False, "error": one_line(exc), "trace": traceback.format_exc()[-1500:]}
            print(json.dumps(out), file=out_stream, flush=True)
        return
    try:
        out = call(job["ref"], job["arguments"])
    except BaseException as exc:  # noqa: BLE001
        out = {"ok": False, "error": one_line(exc)}
    print(json.dumps(out), file=out_stream, flush=True)


main()
