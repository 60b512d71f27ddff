"""The docs run as written: every fenced block and command in README.md and docs/*.md, checked.

- A YAML block that is a whole recipe, or a whole stages file, is written to
  a temporary folder with small data files for every `path:` it names and
  validated with `synthloom validate` (which reads those files too).
- A YAML block that is part of a recipe says so on the line above its fence:
  `<!-- docs: fragment of examples/X.yaml -->` (its keys replace that
  example's) or `<!-- docs: fragment of examples/X.yaml, under KEY -->` (a
  list becomes `KEY`, a mapping is merged into it); the example with the
  fragment in it is validated. `<!-- docs: fragment -->` alone: only parsed.
- A Python block is compiled and its imports are run;
  `<!-- docs: run -->` above it runs the whole block (in a temporary folder).
- Every `synthloom ...` command, in shell blocks, inline code and the comments
  of examples/*.yaml, names a real subcommand and real options (read from the
  command-line app itself), and the files under examples/ it names exist;
  `make X` names a Makefile target, `pip install 'synthloom[X]'` a real
  extra, `python FILE` an existing file and `python -m M` a module.

Links to files of the project must lead somewhere.

New docs and new commands need nothing here: the blocks and the CLI are read.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from conftest import ROOT
from synthloom.cli import app, main
from synthloom.evaluate.benchmarks import BENCHMARKS
from synthloom.recipe.common import expand_vars

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!--\s*docs:\s*(.*?)\s*-->")
CLI = typer.main.get_command(app)


@dataclass
class Block:
    file: Path
    line: int
    lang: str
    text: str
    marker: str | None  # what the `<!-- docs: ... -->` line right above the fence says

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def blocks(lang: str) -> list[Block]:
    out = []
    for file in DOCS:
        text = file.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1) != lang:
                continue
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            out.append(Block(file, text[: m.start()].count("\n") + 1, lang, m.group(2), marker.group(1) if marker else None))
    return out


def by_where(items: list[Block]) -> Any:
    return pytest.mark.parametrize("block", items, ids=[b.where for b in items])


# -- YAML: recipes and stages files, validated --------------------------------------------


def _mappings(value: Any, parent: dict | None = None):
    if isinstance(value, dict):
        yield value, parent
        for item in value.values():
            yield from _mappings(item, value)
    elif isinstance(value, list):
        for item in value:
            yield from _mappings(item, parent)


def _write_table(path: Path, columns: list[str], rows: list[dict], header: bool, format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = format if format != "auto" else {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix, "tsv")
    if kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="," if kind == "csv" else "\t", lineterminator="\n")
        if header:
            writer.writerow(columns)
        writer.writerows([[row[c] for c in columns] for row in rows])


def write_named_files(recipe: dict, folder: Path) -> None:
    """Small data files for every `path:` a recipe names that is not there, shaped as it expects."""
    task = recipe.get("task") or {}
    labels = [str(label) for label in (task.get("labels") or recipe.get("labels") or ["x", "y"])]
    fields = [str(f) for f in (task.get("fields") or {})]
    for mapping, parent in _mappings(recipe):
        path = mapping.get("path")
        if not isinstance(path, str) or mapping.get("source") in ("concept_tree", "personas") or mapping.get("if_missing") == "skip":
            continue
        target = Path(expand_vars(path)).expanduser()
        target = target if target.is_absolute() else folder / target
        if target.exists():
            continue
        header, label_col, values = "columns" not in mapping, None, labels
        if mapping.get("name") in BENCHMARKS:
            entry = BENCHMARKS[mapping["name"]]
            columns = [sources[0] for sources in entry.inputs.values()] + list(entry.target[:1])
            # a benchmark file without splits is split stratified on its target: one answer for all
            label_col = entry.target[0] if entry.target else None
            values = labels if entry.trainable else ["an answer"]
        elif mapping.get("source") == "knowledge_graph":
            columns = ["subject", "relation", "object"]
        elif "columns" in mapping:
            columns = list(mapping["columns"])
            label_col = mapping.get("label_field", "label") if "label" in columns else None
        else:
            label_col = mapping.get("label_field", task.get("label_field", "label"))
            extra = [parent.get(k) for k in ("prompt_field", "answer_field") if parent and parent.get(k)]
            columns = list(dict.fromkeys([mapping.get("text_field", "text"), *fields, *extra] + ([label_col] if label_col else [])))
        rows = [{c: (label if c == label_col else f"{c} {i}") for c in columns}
                for i in range(10) for label in values]
        _write_table(target, columns, rows, header, mapping.get("format", "auto"))


def _fragment_recipe(block: Block, data: Any) -> dict:
    m = re.fullmatch(r"fragment of (\S+?)(?:, under (\w+))?", block.marker or "")
    assert m, f"{block.where}: a YAML block that is not a whole recipe needs `<!-- docs: fragment of examples/X.yaml[, under KEY] -->` above it"
    base = yaml.safe_load((ROOT / m.group(1)).read_text())
    if m.group(2) is None:
        assert isinstance(data, dict), f"{block.where}: a list fragment needs `, under KEY`"
        base.update(data)
    elif isinstance(data, list):
        base[m.group(2)] = data
    else:
        base[m.group(2)] = {**(base.get(m.group(2)) or {}), **data}
    return base


def validate(path: Path, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["validate", str(path)])
        sys.exit(0)
    out, err = capsys.readouterr()
    return done.value.code, (err or out).strip()


@by_where(blocks("yaml"))
def test_yaml_block_validates(block, tmp_path, capsys):
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.where}: not YAML: {exc}")
    if block.marker == "fragment":
        return
    whole = isinstance(data, dict) and (("name" in data and "task" in data) or ("curation" in data and "task" not in data))
    recipe = data if whole else _fragment_recipe(block, data)
    shutil.copytree(ROOT / "examples" / "data", tmp_path / "data")
    if isinstance(recipe, dict) and "documents" in recipe:  # the bundled documents, where the examples find them
        (tmp_path / "documents").symlink_to(ROOT / "examples" / "documents")
    if isinstance(recipe, dict) and "tools" in recipe:  # the example tools, where the examples find them
        (tmp_path / "tools").symlink_to(ROOT / "examples" / "tools")
    write_named_files(recipe, tmp_path)
    path = tmp_path / "recipe.yaml"
    path.write_text(block.text if whole else yaml.safe_dump(recipe, sort_keys=False))
    code, message = validate(path, capsys)
    assert code == 0, f"{block.where}: {message}"


# -- Python: compiled, imports run, cheap blocks run ---------------------------------------


@by_where(blocks("python"))
def test_python_block_compiles_and_imports(block, tmp_path, monkeypatch):
    try:
        tree = ast.parse(block.text, filename=block.where)
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: line {exc.lineno}: {exc.msg}")
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), block.where, "exec"), {})
    if block.marker == "run":
        monkeypatch.chdir(tmp_path)
        shutil.copytree(ROOT / "examples", tmp_path / "examples")
        exec(compile(tree, block.where, "exec"), {"__name__": "__docs__"})


# -- commands: real subcommands, real options ------------------------------------------


def _commands(text: str) -> list[str]:
    """Command lines of a shell block: continuations joined, comments dropped."""
    text = text.replace("\\\n", " ")
    return [line.split(" #", 1)[0].strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


INLINE = re.compile(r"`((?:\.venv/bin/)?synthloom [^`]+|make \w[^`]*|(?:\.venv/bin/)?python3? (?:-m )?[\w./-]+[^`]*)`")


def _inline_commands(text: str) -> list[tuple[int, str]]:
    """(line, command) of every command in inline code, which may wrap over two lines."""
    return [(text[: m.start()].count("\n") + 1, " ".join(m.group(1).split())) for m in INLINE.finditer(text)]


def command_problems(command: str) -> list[str]:
    """What is wrong with one documented command line (empty when it is right)."""
    head = command.split(maxsplit=1)[0] if command.strip() else ""
    if Path(head).name not in ("synthloom", "python", "python3", "make", "pip"):
        return []  # not a command this checks (or output shown in a block)
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [f"cannot be parsed as a shell command ({exc})"]
    if words[0] == "pip" and "install" in words:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        return [f"no extra {extra!r} in pyproject.toml" for w in words if w.startswith("synthloom[")
                for extra in w[len("synthloom["):].rstrip("]").split(",") if extra not in extras]
    words = shlex.split(command.replace("[", " ").replace("]", " "))  # [--optional parts] as written in usage lines
    if Path(words[0]).name in ("python", "python3") and len(words) > 1:
        if words[1] == "-m":
            module = words[2]
            if module == "synthloom":
                return command_problems(" ".join(["synthloom", *words[3:]]))
            if not module.startswith("synthloom"):
                return []
            spec = importlib.util.find_spec(module)
            if spec is None or spec.origin is None:
                return [f"no module {module}"]
            return _script_options(module, Path(spec.origin), words[3:])
        script = ROOT / words[1]
        return _script_options(words[1], script, words[2:]) if script.is_file() else [f"no file {words[1]}"]
    if words[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
        return [f"no make target {w}" for w in words[1:] if not w.startswith("-") and "=" not in w and w not in targets]
    if Path(words[0]).name != "synthloom":
        return []
    args = words[1:]
    while args and args[0].startswith("-"):  # options of the program itself (--version, --help)
        if args[0] not in {o for p in CLI.params for o in p.opts + p.secondary_opts} | {"--help"}:
            return [f"synthloom has no option {args[0]}"]
        args = args[1:]
    if not args:
        return []
    sub = CLI.commands.get(args[0])
    if sub is None:
        return [f"no command `synthloom {args[0]}` (commands: {', '.join(sorted(CLI.commands))})"]
    known = {o for p in sub.params for o in p.opts + p.secondary_opts} | {"--help"}
    return [f"`synthloom {args[0]}` has no option {w.split('=')[0]}"
            for w in args[1:] if w.startswith("-") and w.split("=")[0] not in known] + [
        f"no file {w}" for w in args[1:] if w.startswith("examples/") and not (ROOT / w).exists()]


def _script_options(name: str, script: Path, args: list[str]) -> list[str]:
    """Options (before a lone `--`) that the script's argument parser does not name."""
    source = script.read_text(encoding="utf-8")
    args = args[: args.index("--")] if "--" in args else args
    return [f"{name} has no option {w}" for w in args
            if w.startswith("--") and f'"{w.split("=")[0]}"' not in source and f"'{w.split('=')[0]}'" not in source]


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) of every command in the docs, and in the comments of the example recipes."""
    out = []
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        for i, line in enumerate(example.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("#"):
                out += [(f"{example.relative_to(ROOT)}:{i}", c) for c in _commands(line.lstrip("# "))]
    for block in blocks("sh") + blocks("") + blocks("bash"):
        out += [(block.where, c) for c in _commands(block.text)]
    for file in DOCS:
        out += [(f"{file.relative_to(ROOT)}:{i}", c) for i, c in _inline_commands(file.read_text(encoding="utf-8"))]
    return out


def test_every_documented_command_is_real():
    commands = documented_commands()
    assert sum("synthloom" in c for _, c in commands) >= 20  # the docs were read
    problems = [f"{where}: {command}: {p}" for where, command in commands for p in command_problems(command)]
    assert problems == []


def test_a_wrong_command_or_option_is_caught():
    assert command_problems("synthloom run r.yaml --limt 5") == ["`synthloom run` has no option --limt"]
    assert command_problems(".venv/bin/synthloom vaildate r.yaml")[0].startswith("no command `synthloom vaildate`")
    assert command_problems("synthloom --verison") == ["synthloom has no option --verison"]
    assert command_problems("make dmeo") == ["no make target dmeo"]
    assert command_problems("pip install 'synthloom[rya]'") == ["no extra 'rya' in pyproject.toml"]
    assert command_problems("python benchmarks/nothing.py") == ["no file benchmarks/nothing.py"]
    assert command_problems("python benchmarks/selective.py --nn 5") == ["benchmarks/selective.py has no option --nn"]
    assert command_problems("python -m synthloom.execute.local_clustr -- x") == ["no module synthloom.execute.local_clustr"]
    assert command_problems("python -m synthloom.execute.local_cluster --wrkers 2 -- x --y") == [
        "synthloom.execute.local_cluster has no option --wrkers"]
    assert command_problems("synthloom run examples/sms_spam.yml") == ["no file examples/sms_spam.yml"]
    assert command_problems("synthloom run r.yaml --out runs/x --limit 5 --no-progress") == []
    assert command_problems("synthloom evaluate d.jsonl --reference=r.tsv [--judge 20]") == []


def test_every_link_to_a_file_of_the_project_leads_somewhere():
    missing = []
    for file in DOCS:
        text = file.read_text(encoding="utf-8")
        for m in re.finditer(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            target = m.group(1)
            if "://" not in target and not target.startswith("mailto:") and not (file.parent / target).exists():
                missing.append(f"{file.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {target}")
    assert missing == []
