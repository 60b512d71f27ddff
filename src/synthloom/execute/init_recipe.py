"""`synthloom init --from train.csv`: a commented recipe for the commonest case, written from a labelled file.

A user with a labelled file wants a better classifier. This writes the
recipe that tries it: the task's fields and labels (with empty descriptions
to fill in), a seeded sample of `per_class` examples per label (the support
set, written next to the recipe as JSONL) used as the nearest
demonstrations and as the reference of the support-anchored curation
stages, and a downstream stage that compares the support alone, the
synthetic records alone and both together on the user's test file, or else
on a stratified 20% split of the given file (the support is drawn from the
other 80% only, so the test rows are never seen before the final score).

Files synthloom's dataset specs cannot read directly (a Hugging Face
dataset folder) are converted to JSONL next to the recipe.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recipe import DatasetSpec, SplitSpec, load_recipe
from ..records import DataError, atomic_write_text, is_hf_saved_dataset, load_dataset, read_located_rows

__all__ = ["InitResult", "init_recipe"]

TEXT_NAMES = ("text", "sentence", "content", "message", "review", "utterance", "question", "document", "body")
LABEL_NAMES = ("label", "labels", "category", "class", "intent", "target", "sentiment", "topic", "y")
TEST_FRACTION = 0.2


@dataclass
class InitResult:
    recipe: Path
    support: Path
    labels: list[str]
    train_rows: int
    test: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Data:
    path: Path  # a file a DatasetSpec reads
    rows: list[tuple[int | None, dict[str, Any]]]  # (line, row)
    text_field: str
    label_field: str
    columns: list[str] | None = None


def _hf_rows(path: Path, out_dir: Path) -> Path:
    """A saved Hugging Face dataset as JSONL next to the recipe (class indices become names)."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path}: reading Hugging Face datasets needs `pip install 'synthloom[curation]'`") from None
    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        data = data["train"] if "train" in data else data[next(iter(data))]
    names = {c: f.names for c, f in data.features.items() if isinstance(f, datasets.ClassLabel)}
    rows = [{k: (names[k][v] if k in names and isinstance(v, int) else v) for k, v in row.items()} for row in data.to_list()]
    target = out_dir / f"{path.name}.jsonl"
    atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    return target


def _pick(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str, path: Path, flag: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}:1: no {what} column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise DataError(f"{path}:1: no {what} column (columns: {', '.join(columns)}); name it with {flag}")


def _read(
    path: Path, out_dir: Path, text_field: str | None, label_field: str | None, columns: list[str] | None = None
) -> _Data:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    readable = _hf_rows(path, out_dir) if is_hf_saved_dataset(path) else path
    located = read_located_rows(readable, columns=columns)
    if not located:
        raise DataError(f"{path}:1: no rows (the file is empty)")
    names = [str(c) for c in located[0][2]]
    label = _pick(names, label_field, LABEL_NAMES, "label", path, "--label-field")
    if text_field is None:
        others = [c for c in names if c != label]
        named = [c for c in others if c.lower() in TEXT_NAMES]
        if named:
            text = named[0]
        else:  # the column with the longest texts
            lengths = {c: sum(len(str(r.get(c) or "")) for _, _, r in located) for c in others}
            if not lengths:
                raise DataError(f"{path}:1: no text column besides the label {label!r}; name it with --text-field")
            text = max(lengths, key=lambda c: lengths[c])
    else:
        text = _pick(names, text_field, TEXT_NAMES, "text", path, "--text-field")
    rows = []
    for file, line, row in located:
        where = f"{file}:{line}" if line is not None else f"{file}"
        if row.get(label) in (None, ""):
            raise DataError(f"{where}: empty label in column {label!r}")
        if row.get(text) in (None, ""):
            raise DataError(f"{where}: empty text in column {text!r}")
        rows.append((line, row))
    return _Data(readable, rows, text, label, columns)


def _labels(data: _Data, path: Path) -> list[str]:
    counts = Counter(str(row[data.label_field]) for _, row in data.rows)
    if len(counts) < 2:
        only = next(iter(counts))
        raise DataError(
            f"{path}:{data.rows[-1][0] or 1}: column {data.label_field!r} has one label ({only!r}) in all "
            f"{len(data.rows)} rows; a classifier needs two or more"
        )
    return sorted(counts)


def _q(value: Any) -> str:
    """A YAML scalar (JSON is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _rel(path: Path, base: Path) -> str:
    """Relative to the recipe when near it (the two move together), else absolute."""
    rel = os.path.relpath(path.resolve(), base.resolve())
    return rel if not rel.startswith(os.pardir + os.sep + os.pardir) else str(path.resolve())


def _identifier(name: str) -> str:
    return name if name.isidentifier() and name != "label" else "text"


def _dataset_yaml(indent: str, path: str, data: _Data, split: bool, seed: int, part: str = "test") -> str:
    lines = [f"path: {_q(path)}", f"text_field: {_q(data.text_field)}", f"label_field: {_q(data.label_field)}"]
    if data.columns:
        lines.append(f"columns: {_q(data.columns)}")
    if split:
        lines.append(f"split: {{test_fraction: {TEST_FRACTION}, seed: {seed}, part: {part}}}")
    return "".join(f"{indent}{line}\n" for line in lines)


def init_recipe(
    source: str | Path,
    out: str | Path = "recipe.yaml",
    *,
    text_field: str | None = None,
    label_field: str | None = None,
    per_class: int = 10,
    test: str | Path | None = None,
    columns: list[str] | None = None,
    seed: int = 0,
    records: int | None = None,
    force: bool = False,
) -> InitResult:
    """Write a recipe (and its support file) for `source`; the recipe is validated before returning."""
    source, out = Path(source), Path(out)
    if out.exists() and not force:
        raise DataError(f"{out}: already exists; choose another --out or pass --force")
    out_dir = out.parent if str(out.parent) else Path(".")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _read(source, out_dir, text_field, label_field, columns)
    labels = _labels(data, source)
    notes: list[str] = []
    if test is not None:
        test_data = _read(Path(test), out_dir, data.text_field, data.label_field, columns)
        train_spec = DatasetSpec(
            path=str(data.path.resolve()), text_field=data.text_field, label_field=data.label_field, columns=columns
        )
        test_yaml = _dataset_yaml("      ", _rel(test_data.path, out_dir), test_data, False, seed)
        test_about = str(test)
    else:
        train_spec = DatasetSpec(
            path=str(data.path.resolve()), text_field=data.text_field, label_field=data.label_field, columns=columns,
            split=SplitSpec(test_fraction=TEST_FRACTION, seed=seed, part="train"),
        )
        test_yaml = _dataset_yaml("      ", _rel(data.path, out_dir), data, True, seed)
        test_about = f"a stratified {TEST_FRACTION:.0%} split of {source} (seed {seed})"
    train = load_dataset(train_spec)
    by_label: dict[str, list[str]] = {}
    for record in train:
        by_label.setdefault(str(record.label), []).append(record.text())
    rng = random.Random(seed)
    name = _identifier(data.text_field)
    support_rows = []
    for label in labels:
        pool = by_label.get(label, [])
        if len(pool) < per_class:
            notes.append(f"label {label!r} has {len(pool)} training rows, fewer than --per-class {per_class}")
        support_rows += [{name: text, "label": label} for text in rng.sample(pool, min(per_class, len(pool)))]
    thin = [label for label in labels if not by_label.get(label)]
    if thin:
        raise DataError(f"{source}: label(s) {thin} have no rows left for the support set after the test split")
    support = out.with_name(f"{out.stem}.support.jsonl")
    atomic_write_text(support, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in support_rows))
    n_records = records or min(1000, max(100, 20 * len(labels)))
    text = _render(
        out=out, source=source, data=data, labels=labels, support=_rel(support, out_dir), field_name=name,
        per_class=per_class, test_yaml=test_yaml, test_about=test_about, records=n_records, seed=seed,
        n_support=len(support_rows), shares={label: len(by_label.get(label, [])) for label in labels},
    )
    atomic_write_text(out, text)
    load_recipe(out)  # what was written must load; a failure here is a bug, not the user's
    return InitResult(out, support, labels, len(train), test_about, notes)


def _render(**v: Any) -> str:
    data: _Data = v["data"]
    name = v["field_name"]
    recipe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in v["out"].stem).lstrip("._-") or "recipe"
    labels = "".join(f"    {_q(label)}: \"\"\n" for label in v["labels"])
    shares = "{" + ", ".join(f"{_q(label)}: {count}" for label, count in v["shares"].items()) + "}"
    return f"""\
# Written by `synthloom init --from {v['source']}`. Edit what the comments point at, then:
#
#   synthloom validate {v['out']}
#   synthloom run {v['out']} --limit 20      # a small trial first
#   synthloom run {v['out']}
#
# The support set ({v['n_support']} real examples, {v['per_class']} per label, seed {v['seed']}) is in
# {v['support']}: the model sees the nearest of them as demonstrations, and the support_*
# curation stages judge, weight and mix the synthetic records with a classifier trained on it.
# The final score is measured on {v['test_about']}, which nothing else reads.
name: {recipe_name}

model:
  backend: llamacpp          # the bundled SmolLM2-135M-Instruct; a larger model serves better (see README)

task:
  # Say what a record is, in a sentence the model can follow.
  description: {_q(f"short texts labelled by {data.label_field}, like those in {v['source'].name}")}
  fields:
    {name}: {_q(f"the text ({data.text_field} in {v['source'].name})")}
  # Describe each label in a few words: the model writes far better records for a label it understands.
  labels:
{labels}  # The class mix of {v['source'].name}'s training part. Uncomment it if the data the classifier will meet is
  # mixed like this: generation then plans records in these shares, and support_choice scores held-out support
  # records weighted to them (a balanced support alone cannot show what mislabelling the common class costs).
  # label_weights: {shares}
demonstrations:
  path: {_q(v['support'])}
  text_field: {_q(name)}
  label_field: label
  k: 3
  selection: nearest         # the support examples closest to each record's label (MiniLM)

# Rewrite each support example (style, persona, length drawn per rewrite) instead of generating
# from the label descriptions; each rewrite keeps its example's label (turn augment_check on below):
# augmentation:
#   per_example: 2
# Or label an unlabelled real pool (a file with a {name} column). Add the support's texts to the
# pool and curate with support_posterior: it weighs the model by how often it is right on them
# (the stage that measurably helped in the README's headline; examples/sms_annotate_posterior.yaml).
# support_agree instead keeps only what the support model agrees with (`synthloom review RUN
# --rejected` shows the rest):
# annotation:
#   input: {{path: unlabelled.csv, label_field: null}}
#   samples: 1

generation:
  records: {v['records']}               # how many synthetic records to make
  temperature: 0.9
  max_tokens: 96
  seed: {v['seed']}

curation:
  - stage: garbage_filter
  - stage: meta_talk_filter  # "Sure, here is..." and echoes of the prompt
  - stage: exact_dedup
  - stage: near_dedup
  - stage: novelty           # no near-copies of the support examples (or of each other)
    pool:
      path: {_q(v['support'])}
      text_field: {_q(name)}
  - stage: length_filter
    min_chars: 5
  # The support set (the demonstrations above) judges the synthetic records:
  - stage: support_filter    # relabel what a support-trained model confidently labels otherwise
  - stage: support_weight    # weight each record by that model's probability of its label
  - stage: support_mix       # scale synthetic weights by the factor held-out support folds prefer
  # A run with `augmentation:` rewrites the support examples: drop near-copies and changes of meaning.
  # - stage: augment_check
  # Or, in place of the three support_* stages above, let cross-validation on the support set alone
  # choose what to add to it: the records as they are, relabelled or weighted by the support model,
  # rewrites of the support (augmentation), a model-labelled real pool (agreed, labelled by the
  # support model alone, or by both judges' posterior), a pool and generated records together, or
  # nothing; a candidate must beat nothing by more than one standard error. With 10 real examples
  # per label its pick is noisy (the README's headline).
  # - stage: support_choice
  #   factors: [0.3, 1.0]      # synthetic weight relative to a real record's, tried for each

evaluation:
  - stage: diversity
  - stage: fidelity          # how close the synthetic records are to the real support set
    reference:
      path: {_q(v['support'])}
      text_field: {_q(name)}
      label_field: label
  # support alone (few_real), synthetic alone and support + synthetic, on the held-out test data
  - stage: downstream
    settings: [synthetic, few_real_plus_synthetic]
    few_per_class: {v['per_class']}
    train:
      path: {_q(v['support'])}
      text_field: {_q(name)}
      label_field: label
    test:
{v['test_yaml']}"""
