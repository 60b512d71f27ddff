"""Records and dataset files: the one shape data has everywhere in synthloom.

A `Record` carries its fields, label, the conditions and demonstrations that
produced it, the rendered prompt, and what each curation stage said of it
(`scores[stage]`, `flags[stage]`, `reasons[stage]`). On disk it is one
Parquet row with flat, predictable columns: the fields, the label, then
`<stage>_score`, `<stage>_flag`, `<stage>_reason` per stage, so that
`pandas.read_parquet("curated.parquet")` is all a user needs.

Data files (JSONL, CSV, TSV, Parquet, or a folder of them) are read with
errors that name the file and line.

It is long (over 400 lines) because the record and every file format it is
read from and written to belong together: each reader is short, and one
module keeps the column contract and the `file:line` errors in one place.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ._json import dumps

METADATA_KEY = b"synthloom"


class DataError(ValueError):
    """A data file problem, printed as `file:line: message`."""


@dataclass
class Record:
    id: str
    fields: dict[str, Any]
    label: str | None = None
    conditions: dict[str, str] = field(default_factory=dict)
    demonstrations: list[str] = field(default_factory=list)
    prompt: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def text(self, field_name: str | None = None) -> str:
        """The record's main text: the named field, or the first one."""
        if field_name is None:
            field_name = next(iter(self.fields))
        value = self.fields.get(field_name)
        return "" if value is None else str(value)

    def decide(self, stage: str, flag: str, score: float | None = None, reason: str = "") -> None:
        """Write a stage's decision in the shape every stage uses."""
        self.flags[stage] = flag
        if score is not None:
            self.scores[stage] = float(score)
        if reason:
            self.reasons[stage] = reason


# -- Parquet / JSONL of records ------------------------------------------------


def _stage_names(records: Sequence[Record]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for name in list(r.flags) + list(r.scores):
            seen.setdefault(name, None)
    return list(seen)


def records_to_rows(
    records: Sequence[Record], label_field: str = "label", prompts: bool = True
) -> list[dict[str, Any]]:
    stages = _stage_names(records)
    rows = []
    for r in records:
        row: dict[str, Any] = {"id": r.id}
        row.update(r.fields)
        row[label_field] = r.label
        if r.conditions:
            row["conditions"] = dict(r.conditions)
        row["demonstrations"] = list(r.demonstrations)
        if prompts:
            row["prompt"] = r.prompt
        row["weight"] = r.weight
        for stage in stages:
            row[f"{stage}_score"] = r.scores.get(stage)
            row[f"{stage}_flag"] = r.flags.get(stage)
            row[f"{stage}_reason"] = r.reasons.get(stage)
        row["meta"] = dumps(r.meta).decode("utf-8") if r.meta else None
        rows.append(row)
    return rows


def write_records(
    path: str | Path, records: Sequence[Record], label_field: str = "label", prompts: bool = True
) -> Path:
    """Write records to Parquet (or JSONL by suffix), atomically: all or nothing on disk.

    `prompts=False` leaves out the rendered prompts (kept once, in generated.parquet).
    """
    path = Path(path)
    rows = records_to_rows(records, label_field, prompts)
    lines = b"".join(dumps(row) + b"\n" for row in rows)
    if path.suffix == ".jsonl":
        atomic_write_bytes(path, lines)
        return path
    field_names = list(dict.fromkeys(k for r in records for k in r.fields))
    stages = _stage_names(records)
    info = {"fields": field_names, "label_field": label_field, "stages": stages}
    table = _rows_table(lines, _known_schema(records, label_field, stages, prompts), field_names)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(info).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _known_schema(records: Sequence[Record], label_field: str, stages: list[str], prompts: bool) -> pa.Schema:
    """Types of the columns synthloom owns; the fields' types are inferred."""
    condition_keys = list(dict.fromkeys(k for r in records for k in r.conditions))
    columns = [("id", pa.string()), (label_field, pa.string())]
    if condition_keys:
        columns.append(("conditions", pa.struct([(k, pa.string()) for k in condition_keys])))
    columns.append(("demonstrations", pa.list_(pa.string())))
    if prompts:
        columns.append(("prompt", pa.string()))
    columns.append(("weight", pa.float64()))
    for stage in stages:
        columns += [(f"{stage}_score", pa.float64()), (f"{stage}_flag", pa.string()), (f"{stage}_reason", pa.string())]
    columns.append(("meta", pa.string()))
    return pa.schema(columns)


def _rows_table(lines: bytes, schema: pa.Schema, field_names: list[str]) -> pa.Table:
    """Rows (as JSON lines) to an Arrow table, parsed in C++.

    Going through JSON rather than `pa.Table.from_pylist` keeps pandas from
    being imported (pyarrow probes Python lists for pandas types), which alone
    would cost a run more CPU than a thousand requests.
    """
    if not lines:
        schema = schema.insert(1, pa.field(field_names[0] if field_names else "text", pa.string()))
        return pa.Table.from_batches([], schema=schema)
    table = pa_json.read_json(
        io.BytesIO(lines),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(lines) + 1)),
        parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
    )
    order = ["id", *field_names, *[n for n in schema.names if n != "id"]]
    return table.select([n for n in order if n in table.column_names])


def read_records(path: str | Path, text_field: str | None = None, label_field: str | None = None) -> list[Record]:
    """Read records back from a synthloom Parquet/JSONL file, or any data file.

    For files synthloom did not write, every column is a field except the
    label column (`label_field`, default `label` when present) and `id`.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        meta = (table.schema.metadata or {}).get(METADATA_KEY)
        rows = table.to_pylist()
        if meta:
            info = json.loads(meta)
            return [_row_to_record(row, info["fields"], info["label_field"], info["stages"]) for row in rows]
    else:
        rows = read_rows(path)
    if not rows:
        return []
    columns = list(rows[0])
    if label_field is None:
        label_field = "label" if "label" in columns else None
    if label_field is not None and label_field not in columns:
        raise DataError(f"{path}: no column {label_field!r} (columns: {', '.join(columns)})")
    if text_field is not None and text_field not in columns:
        raise DataError(f"{path}: no column {text_field!r} (columns: {', '.join(columns)})")
    fields = [c for c in columns if c not in (label_field, "id")]
    if text_field is not None:
        fields.remove(text_field)
        fields.insert(0, text_field)
    records = []
    for i, row in enumerate(rows):
        label = row.get(label_field) if label_field else None
        records.append(
            Record(
                id=str(row.get("id", f"{path.stem}-{i}")),
                fields={f: row.get(f) for f in fields},
                label=None if label is None else str(label),
            )
        )
    return records


def _row_to_record(row: dict[str, Any], fields: list[str], label_field: str, stages: list[str]) -> Record:
    record = Record(
        id=row["id"],
        fields={f: row.get(f) for f in fields},
        label=row.get(label_field),
        conditions=dict(row.get("conditions") or {}),
        demonstrations=list(row.get("demonstrations") or []),
        prompt=row.get("prompt"),
        weight=row.get("weight", 1.0) if row.get("weight") is not None else 1.0,
        meta=json.loads(row["meta"]) if row.get("meta") else {},
    )
    for stage in stages:
        if row.get(f"{stage}_flag") is not None:
            record.flags[stage] = row[f"{stage}_flag"]
        if row.get(f"{stage}_score") is not None:
            record.scores[stage] = row[f"{stage}_score"]
        if row.get(f"{stage}_reason"):
            record.reasons[stage] = row[f"{stage}_reason"]
    return record


# -- atomic writes -------------------------------------------------------------


class atomic_path:
    """`with atomic_path(p) as tmp:` write to tmp; it replaces p only if the block succeeds."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        else:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# -- reading data files --------------------------------------------------------


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None


def read_text(path: str | Path) -> str:
    """A text file's contents; bytes that are not UTF-8 raise a DataError naming file and line."""
    return _decode(Path(path))


def read_rows(path: str | Path, format: str = "auto", columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL, CSV, TSV or Parquet file (or every such file in a folder)."""
    return [row for _, _, row in read_located_rows(path, format, columns)]


LocatedRow = tuple[Path, int | None, dict[str, Any]]


def read_located_rows(path: str | Path, format: str = "auto", columns: list[str] | None = None) -> list[LocatedRow]:
    """Rows as (file, line, row): the line a row starts on in a text file (None in Parquet)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _format_of(p, "auto", strict=False))
        if not files:
            raise DataError(f"{path}: folder has no .jsonl, .csv, .tsv or .parquet files")
        return [row for p in files for row in read_located_rows(p, format, columns)]
    if not path.exists():
        raise DataError(f"{path}: file not found")
    kind = _format_of(path, format)
    rows: list[LocatedRow]
    if kind == "parquet":
        rows = [(path, None, row) for row in pq.read_table(path).to_pylist()]
    elif kind == "jsonl":
        rows = []
        for n, line in enumerate(_decode(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{n}: not a JSON object ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            rows.append((path, n, row))
    else:
        rows = _read_delimited(path, "\t" if kind == "tsv" else ",", columns)
    if columns and kind in ("jsonl", "parquet"):
        missing = [c for c in columns if rows and c not in rows[0][2]]
        if missing:
            raise DataError(f"{path}: no column(s) {missing}")
    return rows


def _read_delimited(path: Path, delimiter: str, columns: list[str] | None) -> list[LocatedRow]:
    text = _decode(path)
    records: Iterable[tuple[int, list[str]]]
    if delimiter == "\t":
        records = enumerate((line.split("\t") for line in text.splitlines()), 1)
    else:
        records = _csv_records(csv.reader(io.StringIO(text, newline="")))
    rows: list[LocatedRow] = []
    header = list(columns) if columns else None
    for n, cells in records:
        if not cells or cells == [""]:
            continue
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if len(cells) != len(header):
            if len(cells) > len(header) and delimiter == "\t":
                cells = cells[: len(header) - 1] + ["\t".join(cells[len(header) - 1 :])]
            else:
                raise DataError(f"{path}:{n}: expected {len(header)} columns, found {len(cells)}")
        rows.append((path, n, dict(zip(header, cells))))
    return rows


def _csv_records(reader: Any) -> Iterable[tuple[int, list[str]]]:
    """CSV records with the line each starts on (a quoted cell may span lines)."""
    start = 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _format_of(path: Path, format: str, strict: bool = True) -> str | None:
    if format != "auto":
        return format
    suffix = path.suffix.lower()
    kind = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}.get(suffix)
    if kind is None and strict:
        # Files without a known suffix (like SMSSpamCollection) are tab-separated text.
        return "tsv"
    return kind


def split_rows(
    rows: list[dict[str, Any]], test_fraction: float, seed: int, label_field: str | None, stratify: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A fixed, seeded (and by default label-stratified) train/test split."""
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        key = row.get(label_field) if (stratify and label_field) else None
        groups.setdefault(key, []).append(i)
    rng = random.Random(seed)
    test: set[int] = set()
    for key in sorted(groups, key=str):
        idx = groups[key]
        rng.shuffle(idx)
        test.update(idx[: round(len(idx) * test_fraction)])
    train_rows = [r for i, r in enumerate(rows) if i not in test]
    test_rows = [r for i, r in enumerate(rows) if i in test]
    return train_rows, test_rows


def load_dataset(spec: Any) -> list[Record]:
    """Records from a `DatasetSpec` (file, columns, split, limit)."""
    rows = read_rows(spec.path, spec.format, spec.columns)
    if not rows:
        raise DataError(f"{spec.path}: no rows")
    for name in [spec.text_field] + ([spec.label_field] if spec.label_field else []):
        if name not in rows[0]:
            raise DataError(f"{spec.path}: no column {name!r} (columns: {', '.join(rows[0])})")
    stem = Path(spec.path).stem
    for i, row in enumerate(rows):
        row.setdefault("id", f"{stem}-{i}")
    if spec.split is not None:
        train, test = split_rows(rows, spec.split.test_fraction, spec.split.seed, spec.label_field, spec.split.stratify)
        rows = test if spec.split.part == "test" else train
    if spec.limit is not None:
        rows = rows[: spec.limit]
    return [
        Record(
            id=str(row["id"]),
            fields={spec.text_field: row[spec.text_field]},
            label=None if not spec.label_field or row.get(spec.label_field) is None else str(row[spec.label_field]),
        )
        for row in rows
    ]


# -- any dataset as records (for curating data made elsewhere) ------------------

HF_PREFIX = "hf:"


def is_hf_saved_dataset(path: str | Path) -> bool:
    """A folder written by `datasets.Dataset.save_to_disk` (or `DatasetDict.save_to_disk`)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in ("state.json", "dataset_dict.json"))


def read_hf_rows(source: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset: a folder saved with `save_to_disk`, or `hf:NAME` (loaded
    with `datasets.load_dataset`, from the local cache or the hub)."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{source}: reading Hugging Face datasets needs `pip install 'synthloom[curation]'`") from None
    text = str(source)
    if text.startswith(HF_PREFIX):
        try:
            data = datasets.load_dataset(text[len(HF_PREFIX) :], split=split)
        except Exception as exc:  # the library raises many kinds; the user needs one line
            raise DataError(f"{source}: cannot load the dataset ({type(exc).__name__}: {exc})") from None
    else:
        data = datasets.load_from_disk(text)
    if isinstance(data, (datasets.DatasetDict, dict)):
        names = list(data)
        chosen = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
        if chosen not in names:
            raise DataError(f"{source}: choose a split with --split ({', '.join(names)})")
        data = data[chosen]
    return data.to_list()


def read_data_records(
    source: str | Path,
    text_field: str = "text",
    label_field: str | None = "label",
    split: str | None = None,
    format: str = "auto",
) -> tuple[list[Record], list[str]]:
    """Records from any data: a JSONL/CSV/TSV/Parquet file or folder, a saved Hugging Face
    dataset, or `hf:NAME`. Returns the records and notes for the user.

    The text column must exist; a missing label column leaves the records
    unlabelled (with a note). A file synthloom wrote keeps its stage columns.
    """
    notes: list[str] = []
    text = str(source)
    path = Path(source)
    if not text.startswith(HF_PREFIX) and not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".parquet" and METADATA_KEY in (pq.read_schema(path).metadata or {}):
        return read_records(path), notes
    if text.startswith(HF_PREFIX) or is_hf_saved_dataset(path):
        rows = read_hf_rows(source, split)
    else:
        rows = read_rows(path, format)
    if not rows:
        raise DataError(f"{source}: no rows (empty file)")
    columns = list(rows[0])
    if text_field not in columns:
        raise DataError(f"{source}: no column {text_field!r} (columns: {', '.join(map(str, columns))})")
    if label_field is not None and label_field not in columns:
        notes.append(f"{source}: no column {label_field!r}; the records are unlabelled")
        label_field = None
    fields = [text_field] + [c for c in columns if c not in (text_field, label_field, "id")]
    stem = Path(text[len(HF_PREFIX) :] if text.startswith(HF_PREFIX) else path).stem or "row"
    records = []
    for i, row in enumerate(rows):
        value = row.get(text_field)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{source}: row {i + 1}: column {text_field!r} is {type(value).__name__}, not text")
        label = row.get(label_field) if label_field else None
        records.append(
            Record(
                id=str(row["id"]) if row.get("id") is not None else f"{stem}-{i}",
                fields={f: row.get(f) for f in fields},
                label=None if label is None else str(label),
            )
        )
    return records, notes
