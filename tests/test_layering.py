"""The house's rules, checked: which part of synthloom may import which (see docs/architecture.md).

Data flows one way (recipe -> generate -> curate -> evaluate -> report) and
lower layers never import higher ones. Every top-level module or package of
`src/synthloom` is listed below with what it may import; a new one must be
added here and in docs/architecture.md, so the map stays true without
anyone remembering it. Module size is checked too: past ~400 lines a module
says at its top why it is that long.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "synthloom"

BASE = {"_version", "_json", "_sqlite", "aio", "progress", "templating", "records", "embed"}

ALLOWED: dict[str, set[str]] = {
    "_version": set(),
    "_json": set(),
    "_sqlite": set(),
    "aio": set(),
    "progress": set(),
    "templating": set(),
    "records": {"_json"},
    "embed": {"_json"},
    "llm": BASE,
    "recipe": BASE | {"llm"},
    "sources": BASE | {"llm", "recipe"},
    "sandbox": BASE,
    "tools": BASE | {"recipe", "sandbox"},
    "generate": BASE | {"llm", "recipe", "sources", "tools"},
    "curate": BASE | {"llm", "recipe", "sandbox", "tools", "train"},
    "train": BASE | {"llm", "recipe"},
    "evaluate": BASE | {"llm", "recipe", "train", "sandbox"},
    "report": BASE,
    "review": BASE | {"llm", "recipe"},
    "execute": BASE | {"llm", "recipe", "sources", "sandbox", "tools", "generate", "curate", "train", "evaluate", "report", "review"},
    "cli": set(),  # filled below: the top may import anything but the package's own __init__
    "__main__": {"cli"},
    "__init__": {"_version", "execute", "recipe", "records"},
}
ALLOWED["cli"] = set(ALLOWED) - {"__init__", "__main__", "cli"}

MAX_LINES = 400


def _unit(module: str) -> str:
    """The top-level part of synthloom a dotted module name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every synthloom import in a file under `root`, relative ones resolved."""
    package = list(path.relative_to(root.parent).parts[:-1])  # a module's (or __init__'s) own package
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("synthloom"):
                continue
            if node.module is None or target == "synthloom":
                out.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
            else:
                out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names if alias.name.startswith("synthloom"))
    return out


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root.parent).with_suffix("").parts)


def _wrong_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    here = _unit(_module_name(path, root))
    wrong = []
    for line, target in _imports(path, root):
        there = _unit(target)
        if there != here and there not in ALLOWED.get(here, set()):
            wrong.append(f"{path.relative_to(root)}:{line}: {here} imports {target} ({there} is not below {here})")
    return wrong


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_part_is_on_the_map():
    units = {p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0] for p in SOURCES}
    missing = sorted(units - set(ALLOWED))
    assert not missing, f"new top-level parts {missing}: add them to ALLOWED here and to docs/architecture.md"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    wrong = _wrong_imports(path)
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_wrong_imports(tmp_path):
    """The rule can fail: upward imports, relative or absolute, are reported with file and line."""
    root = tmp_path / "synthloom"
    (root / "curate").mkdir(parents=True)
    (root / "curate" / "bad.py").write_text("import json\nfrom ..evaluate import distinct_n\nfrom . import base\n")
    (root / "llm").mkdir()
    (root / "llm" / "__init__.py").write_text("from synthloom.execute.run import run\nfrom .. import generate\n")
    assert _wrong_imports(root / "curate" / "bad.py", root) == [
        "curate/bad.py:2: curate imports synthloom.evaluate (evaluate is not below curate)"]
    assert _wrong_imports(root / "llm" / "__init__.py", root) == [
        "llm/__init__.py:1: llm imports synthloom.execute.run (execute is not below llm)",
        "llm/__init__.py:2: llm imports synthloom.generate (generate is not below llm)",
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_long_modules_say_why(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse("\n".join(lines))) or ""
    assert "long" in docstring.lower(), (
        f"{path.relative_to(PACKAGE)} has {len(lines)} lines: split it, or say at its top why it is this long"
    )
