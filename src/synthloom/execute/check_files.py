"""Read every file a recipe names, before any model is called (`synthloom validate`).

Loading a recipe checks that the files it names exist. A seeds file that
is not UTF-8, lacks the label column or carries a label the task does not
know would still pass, and fail only when a run reaches it, minutes later.
This reads each file with the readers the run uses and checks what the
recipe expects of it: at least one row, the task's fields, the label
column, labels among the task's labels. Problems are one line,
`file:line: problem`, with the data file's line where a row is at fault,
else the recipe's line naming the key.

The files are found by walking the loaded recipe, so a data-file setting
added to any part of the recipe is read here without a change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel

from ..evaluate.benchmarks import load_benchmark
from ..generate.concept_tree import read_tree
from ..generate.knowledge_graph import load_facts
from ..generate.personas import read_personas
from ..llm import LlamaCppConfig
from ..recipe import (
    BenchmarkRef,
    ConceptTreeSpec,
    DatasetSpec,
    DemonstrationsSpec,
    DocumentsSpec,
    KnowledgeGraphSpec,
    PairwiseSpec,
    PersonasSpec,
    RecipeError,
    TextPoolSpec,
    load_curation_file,
    load_recipe,
)
from ..recipe.loader import load_yaml
from ..records import DataError, read_located_rows

Key = tuple[Any, ...]


@dataclass
class FileCheck:
    """What validation read: what the file is, one line per data file, and notes (files a run will skip)."""

    summary: str = ""
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def validate_file(path: str | Path) -> FileCheck:
    """Load a recipe, or a stages file for `synthloom curate --stages`, and read every file it names.

    Raises RecipeError or DataError (one line, file:line) at the first problem.
    """
    data, lines = load_yaml(path)
    if isinstance(data, list) or (isinstance(data, dict) and "curation" in data and "task" not in data and "name" not in data):
        stages = load_curation_file(path)
        checker = _Checker(stages, str(path), lines, stages.labels or [], lambda label: [label], [stages.text_field])
        summary = f"a stages file: {len(stages.curation)} curation stages"
    else:
        recipe = load_recipe(path)
        task = recipe.task
        checker = _Checker(recipe, str(path), lines, task.label_names, task.split_labels, list(task.fields), bool(recipe.steps))
        making = ("labels the rows of annotation.input" if recipe.annotation is not None
                  else f"rewrites real examples ({recipe.augmentation.per_example} each)" if recipe.augmentation is not None
                  else f"{recipe.generation.records} records")
        summary = (f"{recipe.name}: {making}, model {recipe.model.backend}, "
                   f"{len(recipe.curation)} curation and {len(recipe.evaluation)} evaluation stages")
    checker.result.summary = summary
    return checker.run()


def _named_files(model: BaseModel, key: Key = ()) -> Iterator[tuple[Key, Any, Any]]:
    """(key path, spec, the spec's parent) of every part of the recipe that names a file."""
    for name in type(model).model_fields:
        yield from _walk(getattr(model, name), key + (name,), model)


def _walk(value: Any, key: Key, parent: Any) -> Iterator[tuple[Key, Any, Any]]:
    if isinstance(value, (DatasetSpec, KnowledgeGraphSpec, BenchmarkRef, ConceptTreeSpec, PersonasSpec, LlamaCppConfig,
                          DocumentsSpec)):
        yield key, value, parent
    if isinstance(value, BaseModel):
        yield from _named_files(value, key)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, key + (i,), parent)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _walk(item, key + (name,), parent)


def _dotted(key: Key) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key).lstrip(".")


class _Checker:
    """Reads the files of one recipe (or stages file) against what it says of its records."""

    def __init__(self, model: BaseModel, file: str, lines: dict[Key, int], labels: list[str],
                 split_labels: Callable[[str], list[str]], fields: list[str], steps: bool = False):
        self.model = model
        self.file = file
        self.lines = lines
        self.labels = labels
        self.split_labels = split_labels
        self.fields = fields
        self.steps = steps
        self.result = FileCheck()

    def run(self) -> FileCheck:
        for key, spec, parent in _named_files(self.model):
            self.check(key, spec, parent)
        return self.result

    def error(self, key: Key, message: str) -> RecipeError:
        """An error at the recipe's line of `key` (or of the nearest key above it the file has)."""
        probe = key
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return RecipeError(message, self.file, self.lines.get(probe), _dotted(key))

    def check(self, key: Key, spec: Any, parent: Any) -> None:
        if isinstance(spec, DatasetSpec):
            self._dataset(key, spec, parent)
        elif isinstance(spec, KnowledgeGraphSpec):
            facts = load_facts(spec)
            self.result.files.append(f"{_dotted(key)}: {spec.path}, {len(facts)} facts")
        elif isinstance(spec, BenchmarkRef) and spec.path is not None:
            try:
                records = load_benchmark(spec.name, spec.split, spec.path, spec.config)
            except DataError as exc:  # the registry names the benchmark; say which file too
                raise DataError(str(exc) if spec.path in str(exc) else f"{spec.path}: {exc}") from None
            if not records:
                raise self.error(key + ("path",), f"{spec.path}: no {spec.split} rows")
            self.result.files.append(f"{_dotted(key)}: {spec.path}, {len(records)} {spec.split} rows")
        elif isinstance(spec, ConceptTreeSpec) and spec.path and Path(spec.path).exists():
            read_tree(spec.path)
            self.result.files.append(f"{_dotted(key)}: {spec.path}, a saved concept tree")
        elif isinstance(spec, PersonasSpec) and spec.path and Path(spec.path).exists():
            self.result.files.append(f"{_dotted(key)}: {spec.path}, {len(read_personas(spec.path))} personas")
        elif isinstance(spec, LlamaCppConfig) and spec.model_path:
            self._gguf(key, spec.model_path)
        elif isinstance(spec, DocumentsSpec):
            self._documents(key, spec)

    def _documents(self, key: Key, spec: DocumentsSpec) -> None:
        """Every document is read as a run reads it: a file it cannot read is a note (the run goes on), none an error."""
        from ..sources import ingest

        found = ingest(spec.paths)
        for i, path in enumerate(spec.paths):
            missing = [e for e in found.errors if e.path == path]
            if missing:
                raise self.error(key + ("paths", i), f"{path}: {missing[0].message}")
        if not found.documents:
            raise self.error(key + ("paths",), f"no document could be read ({found.errors[0] if found.errors else 'none found'})")
        self.result.notes.extend(str(e) for e in found.errors)
        self.result.files.append(f"{_dotted(key)}: {len(found.documents)} documents ({', '.join(d.name for d in found.documents)})")

    def _gguf(self, key: Key, model_path: str) -> None:
        path = Path(os.path.expandvars(model_path)).expanduser()
        if not path.is_file():
            raise self.error(key + ("model_path",), f"model file not found: {path}")
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise self.error(key + ("model_path",), f"{path} is not a GGUF model file")
        self.result.files.append(f"{_dotted(key)}: {path}, a GGUF model file")

    def _dataset(self, key: Key, spec: DatasetSpec, parent: Any) -> None:
        if not spec.exists:  # only with if_missing: skip (else loading the recipe refused it)
            self.result.notes.append(f"{_dotted(key)}: {spec.path} not found; a run skips what needs it")
            return
        rows = read_located_rows(spec.path, spec.format, spec.columns)
        if not rows:
            raise self.error(key + ("path",), f"{spec.path} has no rows (an empty file)")
        required, filled, label_field = self._expected(key, spec, parent, rows[0][2])
        check_labels = bool(self.labels) and not isinstance(parent, PairwiseSpec)
        for i, (path, line, row) in enumerate(rows):
            where = f"{path}:{line}" if line is not None else f"{path}: row {i + 1}"
            fields = ", ".join(map(str, row))
            for names in required:
                if not any(name in row for name in names):
                    raise DataError(f"{where}: no field {names[0]!r} (fields: {fields})")
            for names in filled:
                if row[next(n for n in names if n in row)] in (None, ""):
                    raise DataError(f"{where}: field {names[0]!r} is empty")
            if label_field is None:
                continue
            if label_field not in row:
                raise DataError(f"{where}: no label field {label_field!r} (fields: {fields})")
            if check_labels:
                self._labels(where, row[label_field])
        self.result.files.append(f"{_dotted(key)}: {spec.path}, {len(rows)} rows")

    def _labels(self, where: str, value: Any) -> None:
        if value in (None, ""):
            raise DataError(f"{where}: the label is empty")
        known = self.labels
        for label in self.split_labels(str(value)):
            if label not in known:
                shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
                raise DataError(f"{where}: label {label!r} is not one of the recipe's labels ({shown})")

    def _expected(
        self, key: Key, spec: DatasetSpec, parent: Any, first: dict[str, Any]
    ) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], str | None]:
        """What each row must have, as the run reads the file: the columns (each a tuple of
        accepted names), those that must not be empty, and the label column (None: no label).

        Demonstrations and annotation inputs carry the task's fields (a single field may
        come from `text_field`), and a run refuses an empty one; with steps,
        demonstrations serve the steps whose fields they have. Demonstrations of a task
        with labels need the label. Test sets, references and validation sets need
        `text_field` and `label_field`; a pool of texts only its text; a pairwise
        baseline its prompt and answer columns.
        """
        if isinstance(parent, PairwiseSpec):
            return [(parent.prompt_field,), (parent.answer_field,)], [], None
        inputs = key[:2] == ("annotation", "input")
        if isinstance(spec, DemonstrationsSpec) or inputs:
            fields = list(self.fields)
            if self.steps and not inputs:
                fields = [f for f in fields if f in first] or fields
            names = [(spec.text_field, fields[0])] if len(fields) == 1 else [(f,) for f in fields]
            label = spec.label_field if self.labels and not inputs else None
            return names, names, label
        if isinstance(spec, TextPoolSpec):
            return [(spec.text_field,)], [], None
        return [(spec.text_field,)], [], spec.label_field


__all__ = ["FileCheck", "validate_file"]
