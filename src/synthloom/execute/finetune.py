"""`synthloom finetune`: a run's curated records fine-tune a language model, with the weights handed off.

The records become rows in one of TRL's forms (the same rows `synthloom
export` writes, each with the record's curation weight), `train.lm` trains
on them, and the adapter or full model lands in `<out>/model` in Hugging
Face format with a model card naming the data run. With `gguf=True` the
model (merged with its adapter) is also written as GGUF for llama.cpp by
llama.cpp's `convert_hf_to_gguf.py`, when it can be found
(`$SYNTHLOOM_GGUF_CONVERTER` or on the PATH); when not, a clear message
says so and the Hugging Face folder stands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..train.lm import LMResult, LMSettings, train_lm
from ..train.lm_models import LMError
from .export import _read_run, to_row
from .portable import relative


@dataclass
class FinetuneRun:
    result: LMResult
    gguf: Path | None
    gguf_note: str | None


def rows_for(source: str | Path, method: str) -> tuple[list[dict], str]:
    records, manifest, _ = _read_run(Path(source))
    form = "preference" if method == "dpo" else "prompt-completion"
    rows = []
    for record in records:
        row = to_row(record, form)
        row.pop("id", None)
        row.pop("tools", None)
        row["weight"] = record.weight
        rows.append(row)
    return rows, str(manifest.get("name") or manifest.get("source") or Path(source).name)


def converter() -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py: SYNTHLOOM_GGUF_CONVERTER, the PATH, or where `make gguf` unpacks it."""
    named = os.environ.get("SYNTHLOOM_GGUF_CONVERTER")
    if named:
        return Path(named) if Path(named).is_file() else None
    found = shutil.which("convert_hf_to_gguf.py") or shutil.which("convert_hf_to_gguf")
    unpacked = Path(sys.prefix) / "share" / "llama.cpp" / "convert_hf_to_gguf.py"  # scripts/gguf_converter.py
    return Path(found) if found else unpacked if unpacked.is_file() else None


def export_gguf(model_dir: Path, out: Path) -> tuple[Path | None, str | None]:
    """The model (adapter merged) as GGUF, or None and why not."""
    script = converter()
    if script is None:
        return None, ("no GGUF written: llama.cpp's convert_hf_to_gguf.py was not found (set SYNTHLOOM_GGUF_CONVERTER to its "
                      f"path); the Hugging Face folder {model_dir} loads in transformers and PEFT")
    merged = model_dir
    if (model_dir / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM
        from transformers import AutoTokenizer

        merged = out / "merged"
        AutoPeftModelForCausalLM.from_pretrained(str(model_dir)).merge_and_unload().save_pretrained(merged)
        AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(merged)
    target = out / "model.gguf"
    done = subprocess.run([sys.executable, str(script), str(merged), "--outfile", str(target), "--outtype", "f16"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"no GGUF written: {script.name} failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    return target, None


def finetune_run(source: str | Path, out: str | Path, settings: LMSettings, *, gguf: bool = False, progress: bool = True) -> FinetuneRun:
    rows, name = rows_for(source, settings.method)
    if not rows:
        raise LMError(f"{source}: no records to fine-tune on")
    out = Path(out)
    # The card names the data by a path relative to the model's folder: no path of this machine in it.
    where = relative(str(Path(source).resolve()), (out / "model").resolve())
    result = train_lm(rows, out, settings, progress=progress, data_name=f"{name} ({where}, from this folder)")
    path, note = export_gguf(result.model_dir, out) if gguf else (None, None)
    return FinetuneRun(result, path, note)


__all__ = ["FinetuneRun", "converter", "export_gguf", "finetune_run", "rows_for"]
