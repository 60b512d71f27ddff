"""The benchmark registry: the survey's benchmark table, loadable as records.

Each entry knows its Hugging Face dataset id (and config), the fields a
record gets, the label or reference-answer field, its kind and its metric.
An entry loads

- from a local copy when given a path: a folder laid out like the shared
  data folder (`sms_spam/SMSSpamCollection`, `banking77/train.csv`, ...),
  a folder saved with `datasets`' `save_to_disk`, a folder with one data
  file per split (`train.jsonl`, `test.parquet`, ...), or a single file;
- otherwise from the Hugging Face hub through `datasets`, when it is
  installed and the hub is reachable;

and fails with one line naming the benchmark and both places when neither
works. Classification and sentence-pair entries are trainable here (see
`synthloom.evaluate.downstream`); QA and generative ones are scored by
exact match and token F1 (`score_generative`) or by a judge.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from ..records import DataError, Record, read_rows, split_rows

Kind = Literal["classification", "multilabel", "pair", "qa", "generative"]


class BenchmarkUnavailable(DataError):
    """Neither a local copy nor the hub could give the benchmark's data."""


@dataclass(frozen=True)
class LocalLayout:
    """How a benchmark's own distribution files look (the shared data folder's format)."""

    files: dict[str, str]  # split -> file name; "all" when the data has no splits
    columns: tuple[str, ...] | None = None  # for files without a header
    format: str = "auto"
    label_names: tuple[str, ...] | None = None  # for integer labels (offset by `label_base`)
    label_base: int = 0


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    kind: Kind
    hf_id: str
    hf_config: str | None
    inputs: dict[str, tuple[str, ...]]  # record field -> source columns tried in order ("a+b" joins two)
    target: tuple[str, ...]  # label or reference-answer columns tried in order
    metric: str
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    label_names: tuple[str, ...] | None = None  # names of integer labels on the hub
    local: LocalLayout | None = None
    note: str = ""

    @property
    def trainable(self) -> bool:
        return self.kind in ("classification", "pair")

    @property
    def fields(self) -> list[str]:
        return list(self.inputs)


def _b(name: str, title: str, kind: Kind, hf_id: str, hf_config: str | None, inputs: dict[str, tuple[str, ...]], target: tuple[str, ...], metric: str, **kw: Any) -> Benchmark:
    return Benchmark(name, title, kind, hf_id, hf_config, inputs, target, metric, **kw)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        _b("sms_spam", "SMS Spam Collection", "classification", "ucirvine/sms_spam", None,
           {"text": ("text", "sms")}, ("label",), "macro_f1", splits={"train": "train", "test": "train"},
           label_names=("ham", "spam"),
           local=LocalLayout({"all": "SMSSpamCollection"}, columns=("label", "text"), format="tsv"),
           note="one file and no official split: a fixed, seeded, stratified 80/20 split"),
        _b("ag_news", "AG News", "classification", "fancyzhx/ag_news", None,
           {"text": ("text", "title+description")}, ("label", "class"), "accuracy",
           label_names=("World", "Sports", "Business", "Sci/Tech"),
           local=LocalLayout({"test": "test.csv"}, columns=("class", "title", "description"), format="csv",
                             label_names=("World", "Sports", "Business", "Sci/Tech"), label_base=1)),
        _b("imdb", "IMDb movie reviews", "classification", "stanfordnlp/imdb", None,
           {"text": ("text",)}, ("label",), "accuracy", label_names=("neg", "pos"),
           local=LocalLayout({"all": "imdb_small.csv"}, format="csv")),
        _b("go_emotions", "GoEmotions", "multilabel", "google-research-datasets/go_emotions", "simplified",
           {"text": ("text",)}, ("labels",), "macro_f1"),
        _b("clinc150", "CLINC150", "classification", "clinc/clinc_oos", "plus",
           {"text": ("text",)}, ("intent",), "accuracy"),
        _b("banking77", "BANKING77", "classification", "PolyAI/banking77", None,
           {"text": ("text",)}, ("category", "label"), "accuracy",
           local=LocalLayout({"train": "train.csv", "test": "test.csv"}, format="csv")),
        _b("fewrel", "FewRel", "classification", "thunlp/few_rel", "default",
           {"text": ("text", "tokens"), "head": ("head",), "tail": ("tail",)}, ("relation",), "accuracy",
           splits={"train": "train_wiki", "test": "val_wiki"}),
        _b("qnli", "QNLI (GLUE)", "pair", "nyu-mll/glue", "qnli",
           {"question": ("question",), "sentence": ("sentence",)}, ("label",), "accuracy",
           splits={"train": "train", "test": "validation"}, label_names=("entailment", "not_entailment")),
        _b("rte", "RTE (GLUE)", "pair", "nyu-mll/glue", "rte",
           {"sentence1": ("sentence1",), "sentence2": ("sentence2",)}, ("label",), "accuracy",
           splits={"train": "train", "test": "validation"}, label_names=("entailment", "not_entailment"),
           local=LocalLayout({"train": "train.tsv", "test": "dev.tsv"}, format="tsv",
                             label_names=("entailment", "not_entailment"))),
        _b("adversarial_qa", "AdversarialQA", "qa", "UCLNLP/adversarial_qa", "adversarialQA",
           {"context": ("context",), "question": ("question",)}, ("answers",), "exact_match",
           splits={"train": "train", "test": "validation"}),
        _b("truthful_qa", "TruthfulQA", "generative", "truthfulqa/truthful_qa", "generation",
           {"question": ("question",)}, ("best_answer", "correct_answers"), "judge",
           splits={"test": "validation"}),
        _b("math", "MATH", "generative", "EleutherAI/hendrycks_math", "algebra",
           {"problem": ("problem",)}, ("solution",), "exact_match",
           note="scored on the final \\boxed{} answer of the solution"),
        _b("toolbench", "ToolBench", "generative", "Maurus/ToolBench", None,
           {"query": ("query",), "api_list": ("api_list",)}, (), "judge", splits={"train": "train", "test": "train"},
           note="no reference answers: plans are scored by a judge"),
        _b("niv2", "Super-NaturalInstructions (NIV2)", "generative", "Muennighoff/natural-instructions", None,
           {"definition": ("definition",), "inputs": ("inputs",)}, ("targets",), "exact_match"),
        _b("bigbench", "BIG-bench", "generative", "google/bigbench", "abstract_narrative_understanding",
           {"inputs": ("inputs",)}, ("targets",), "exact_match", splits={"train": "train", "test": "validation"},
           note="204 tasks; pass `config=` for another one"),
    ]
}


def benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise BenchmarkUnavailable(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def load_benchmark(
    name: str,
    split: str = "test",
    path: str | Path | None = None,
    config: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> list[Record]:
    """Records of one split of a benchmark, from `path` when given, else from the hub."""
    entry = benchmark(name)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise BenchmarkUnavailable(f"benchmark {name}: {path} not found")
        rows = _local_rows(entry, path, split, test_fraction, seed)
        label_names = entry.local.label_names if entry.local and _is_own_layout(entry, path) else entry.label_names
        label_base = entry.local.label_base if entry.local and _is_own_layout(entry, path) else 0
    else:
        rows, label_names = _hub_rows(entry, split, config, test_fraction, seed)
        label_base = 0
    return _to_records(entry, rows, label_names, label_base, f"{name}-{split}")


def _is_own_layout(entry: Benchmark, path: Path) -> bool:
    return path.is_dir() and entry.local is not None and all((path / f).exists() for f in entry.local.files.values())


def _local_rows(entry: Benchmark, path: Path, split: str, test_fraction: float, seed: int) -> list[dict[str, Any]]:
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
        return _saved_dataset_rows(path, entry.splits.get(split, split), split)
    if _is_own_layout(entry, path):
        layout = entry.local
        assert layout is not None
        if split in layout.files:
            return read_rows(path / layout.files[split], layout.format, list(layout.columns) if layout.columns else None)
        if "all" in layout.files:
            rows = read_rows(path / layout.files["all"], layout.format, list(layout.columns) if layout.columns else None)
            return _split(entry, rows, split, test_fraction, seed)
        raise BenchmarkUnavailable(f"benchmark {entry.name}: {path} has no {split!r} split (has {', '.join(layout.files)})")
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.stem == split and p.suffix in (".jsonl", ".json", ".csv", ".tsv", ".parquet")]
        if files:
            return read_rows(files[0])
        raise BenchmarkUnavailable(
            f"benchmark {entry.name}: {path} is neither its own layout "
            f"({', '.join(entry.local.files.values()) if entry.local else 'none known'}), a saved dataset, nor has a {split}.* file"
        )
    return _split(entry, read_rows(path), split, test_fraction, seed)


def _split(entry: Benchmark, rows: list[dict[str, Any]], split: str, test_fraction: float, seed: int) -> list[dict[str, Any]]:
    label = _first(entry.target, rows[0]) if rows and entry.target else None
    train, test = split_rows(rows, test_fraction, seed, label)
    return test if split == "test" else train


def _saved_dataset_rows(path: Path, hf_split: str, split: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise BenchmarkUnavailable(f"{path} is a saved Hugging Face dataset: pip install datasets") from None
    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        name = hf_split if hf_split in data else split
        if name not in data:
            raise BenchmarkUnavailable(f"{path}: no split {hf_split!r} (has {', '.join(data)})")
        data = data[name]
    return _dataset_rows(data)


def _dataset_rows(data: Any) -> list[dict[str, Any]]:
    rows = data.to_list()
    for column, feature in data.features.items():
        names = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
        if not names:
            continue
        name = lambda v: names[v] if isinstance(v, int) and 0 <= v < len(names) else v  # noqa: E731
        for row in rows:
            value = row.get(column)
            row[column] = [name(v) for v in value] if isinstance(value, list) else name(value)
    return rows


def _hub_rows(
    entry: Benchmark, split: str, config: str | None, test_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], tuple[str, ...] | None]:
    where = f"{entry.hf_id}" + (f" ({config or entry.hf_config})" if (config or entry.hf_config) else "")
    if split not in entry.splits:
        raise BenchmarkUnavailable(f"benchmark {entry.name}: no {split!r} split (has {', '.join(entry.splits)})")
    try:
        import datasets
    except ImportError:
        raise BenchmarkUnavailable(
            f"benchmark {entry.name}: no local copy given (path=...) and the `datasets` package is not installed to fetch {where}"
        ) from None
    try:
        data = datasets.load_dataset(entry.hf_id, config or entry.hf_config, split=entry.splits[split])
    except Exception as exc:  # the hub raises many kinds: offline, not found, gated, connection
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchmarkUnavailable(
            f"benchmark {entry.name}: no local copy given (path=...) and the Hugging Face hub could not give {where}: {first}"
        ) from None
    rows = _dataset_rows(data)
    if split in ("train", "test") and entry.splits.get("train") == entry.splits.get("test"):
        rows = _split(entry, rows, split, test_fraction, seed)
    return rows, entry.label_names


def _first(candidates: Sequence[str], row: dict[str, Any]) -> str | None:
    return next((c for c in candidates if all(part in row for part in c.split("+"))), None)


def _value(row: dict[str, Any], column: str) -> str:
    return ". ".join(_text(row[part]) for part in column.split("+"))


def _to_records(entry: Benchmark, rows: list[dict[str, Any]], label_names: Sequence[str] | None, label_base: int, prefix: str) -> list[Record]:
    if not rows:
        raise BenchmarkUnavailable(f"benchmark {entry.name}: no rows")
    columns = {name: _first(sources, rows[0]) for name, sources in entry.inputs.items()}
    missing = [name for name, col in columns.items() if col is None]
    if missing:
        raise BenchmarkUnavailable(
            f"benchmark {entry.name}: no column for {', '.join(missing)} (columns: {', '.join(rows[0])})"
        )
    target = _first(entry.target, rows[0]) if entry.target else None
    records = []
    for i, row in enumerate(rows):
        fields = {name: _value(row, col) for name, col in columns.items()}
        record = Record(id=str(row.get("id", row.get("idx", f"{prefix}-{i}"))), fields=fields)
        value = row.get(target) if target else None
        if entry.kind in ("classification", "pair"):
            label = _label(value, label_names, label_base)
            if label is None:
                continue  # unlabelled rows (e.g. GLUE test sets, label -1)
            record.label = label
        elif entry.kind == "multilabel":
            labels = [_label(v, label_names, label_base) for v in (value if isinstance(value, list) else [value])]
            record.label = ",".join(sorted(l for l in labels if l is not None))
        elif value is not None:
            record.meta["references"] = _references(value)
        records.append(record)
    return records


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("text", value.get("name", value))
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _label(value: Any, names: Sequence[str] | None, base: int) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if names and re.fullmatch(r"-?\d+", text):
        index = int(text) - base
        return names[index] if 0 <= index < len(names) else None
    return text


def _references(value: Any) -> list[str]:
    if isinstance(value, dict) and "text" in value:
        value = value["text"]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def restrict_labels(records: Sequence[Record], n: int, reference: Sequence[Record] | None = None) -> tuple[list[Record], list[str]]:
    """Keep the n labels most frequent in `reference` (default: `records`), ties alphabetical.

    A fixed rule for benchmarks on a subset of a many-class dataset (e.g.
    BANKING77 restricted to 20 intents, chosen on its training split).
    """
    counts = Counter(r.label for r in (reference if reference is not None else records) if r.label is not None)
    chosen = sorted(counts, key=lambda label: (-counts[label], label))[:n]
    keep = set(chosen)
    return [r for r in records if r.label in keep], sorted(chosen)


# -- scoring generative answers ------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")


def normalise_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def final_answer(text: str) -> str:
    """The last \\boxed{...} of a worked solution (MATH), else the text itself."""
    found = _BOXED.findall(text)
    return found[-1] if found else text


def token_f1(prediction: str, reference: str) -> float:
    p, r = normalise_answer(prediction).split(), normalise_answer(reference).split()
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or not common:
        return float(p == r)
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def score_generative(predictions: Sequence[str], references: Sequence[Sequence[str]], boxed: bool = False) -> dict[str, float]:
    """Exact match and token F1 of each prediction against its best reference, averaged."""
    if len(predictions) != len(references):
        raise ValueError("one list of references per prediction")
    pick = final_answer if boxed else (lambda t: t)
    em = f1 = 0.0
    for pred, refs in zip(predictions, references):
        pred = normalise_answer(pick(pred))
        em += max((float(pred == normalise_answer(pick(r))) for r in refs), default=0.0)
        f1 += max((token_f1(pick(pred), pick(r)) for r in refs), default=0.0)
    n = max(1, len(predictions))
    return {"exact_match": em / n, "token_f1": f1 / n, "n": len(predictions)}


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkUnavailable",
    "LocalLayout",
    "benchmark",
    "final_answer",
    "load_benchmark",
    "normalise_answer",
    "restrict_labels",
    "score_generative",
    "token_f1",
]
