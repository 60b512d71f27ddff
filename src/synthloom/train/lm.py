"""Fine-tuning a causal language model on the data: SFT and DPO with TRL, LoRA with PEFT.

`train_lm(rows, out, settings)` takes rows in TRL's dataset forms (what
`synthloom export` writes): `messages` or `prompt`/`completion` for SFT,
`prompt`/`chosen`/`rejected` for DPO, each row optionally with a `weight`
(a record's curation weight). The training loop is TRL's; synthloom adds
only what TRL lacks:

- per-example loss weights: each example's own loss (TRL's, on one
  example) times its weight, over the sum of the batch's weights;
- a rich progress bar (loss, steps, time left) and `train_log.jsonl`;
- Ctrl-C: the first SIGINT saves a checkpoint at the end of the current
  step and stops (`TrainingInterrupted`); a rerun with the same data and
  settings resumes from it (a changed run starts afresh);
- the result, in Hugging Face format, in `<out>/model`: the LoRA adapter (or
  the full model) with its tokenizer and a model card naming the data.

Bad input is an `LMError` before any model is loaded where it can be known:
rows with no field a method can use, a pair with an empty side, too few
rows, a full fine-tune that will not fit in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from .lm_callbacks import callbacks as _callbacks
from .lm_models import LMError, load_model, resolve_model

Method = Literal["sft", "dpo"]


@dataclass(frozen=True)
class LMSettings:
    method: Method = "sft"
    model: str | None = None  # None: the embedded SmolLM2-135M-Instruct
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many optimizer steps
    batch_size: int = 4
    learning_rate: float | None = None  # None: 2e-4 with LoRA, 2e-5 full (5e-6 for DPO full)
    max_length: int = 256
    beta: float = 0.1  # DPO
    save_steps: int = 50
    seed: int = 0

    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        if self.lora:
            return 2e-4 if self.method == "sft" else 5e-5
        return 2e-5 if self.method == "sft" else 5e-6


class TrainingInterrupted(Exception):
    """Ctrl-C during training: a checkpoint was saved; a rerun resumes from it."""

    def __init__(self, checkpoint: Path | None, step: int):
        self.checkpoint, self.step = checkpoint, step
        super().__init__(f"training interrupted at step {step}; checkpoint {checkpoint}; run again to resume")


@dataclass
class LMResult:
    model_dir: Path
    method: str
    steps: int
    rows: int
    resumed_from: int | None
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    peak_memory_mb: float = 0.0

    @property
    def first_loss(self) -> float | None:
        return self.losses[0][1] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


# ---------------------------------------------------------------- checking rows

def _messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return bool(value) and all(str(m.get("content") or "").strip() for m in value if isinstance(m, dict))
    return False


def check_rows(rows: Sequence[dict[str, Any]], method: Method, where: str = "data") -> str:
    """The rows' form (`messages`, `prompt-completion`, `preference`), or an LMError naming the first bad row."""
    if len(rows) < 2:
        raise LMError(f"{where}: {len(rows)} row(s); fine-tuning needs at least 2")
    if method == "dpo":
        for i, row in enumerate(rows):
            missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
            if missing:
                raise LMError(f"{where} row {i + 1}: DPO needs prompt/chosen/rejected; missing {', '.join(missing)} (fields: {', '.join(row)})")
            for side in ("chosen", "rejected"):
                if not _filled(row[side]):
                    raise LMError(f"{where} row {i + 1}: the {side} side of the pair is empty")
        return "preference"
    form = "messages" if "messages" in rows[0] else "prompt-completion"
    for i, row in enumerate(rows):
        if form == "messages":
            if not _messages(row.get("messages")):
                raise LMError(f"{where} row {i + 1}: SFT needs `messages` (a list of role/content) or prompt/completion (fields: {', '.join(row)})")
        elif not ("prompt" in row and "completion" in row):
            raise LMError(f"{where} row {i + 1}: SFT needs `messages` or prompt/completion (fields: {', '.join(row)})")
        elif not _filled(row["completion"]):
            raise LMError(f"{where} row {i + 1}: empty completion")
    return form


def _row_weights(rows: Sequence[dict[str, Any]], where: str) -> list[float]:
    weights = []
    for i, row in enumerate(rows):
        w = row.get("weight", 1.0)
        try:
            w = float(1.0 if w is None else w)
        except (TypeError, ValueError):
            raise LMError(f"{where} row {i + 1}: weight {w!r} is not a number") from None
        if w < 0:
            raise LMError(f"{where} row {i + 1}: negative weight {w}")
        weights.append(w)
    if not any(weights):
        raise LMError(f"{where}: every row has weight 0")
    return weights


def check_memory(model_name: str, settings: LMSettings) -> None:
    """A full fine-tune holds weights, gradients and two Adam moments in float32 (16 bytes a parameter)."""
    if settings.lora:
        return
    import psutil

    folder = Path(model_name)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) or sum(f.stat().st_size for f in folder.glob("*.bin"))
    need = size * 4 + 512 * 2**20  # the float32 weights x4, plus activations
    free = psutil.virtual_memory().available
    if size and need > free:
        raise LMError(
            f"model {model_name}: a full fine-tune needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free; use LoRA (lora: true)"
        )


# ---------------------------------------------------------------- the trainers

def _weighted(base: type) -> type:
    """`base` (TRL's SFTTrainer or DPOTrainer) with per-example loss weights from a `weight` column."""
    import torch

    class Weighted(base):  # type: ignore[misc, valid-type]
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None and "weight" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "weight"]

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            weight = inputs.pop("weight", None)
            if weight is None or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            n = int(weight.shape[0])
            losses = []
            for i in range(n):
                one = {k: v[i : i + 1] if torch.is_tensor(v) and v.dim() and v.shape[0] == n else v for k, v in inputs.items()}
                losses.append(super().compute_loss(model, one, False, None))
            w = weight.to(device=losses[0].device, dtype=losses[0].dtype)
            return (torch.stack(losses) * w).sum() / w.sum().clamp(min=1e-12)

    Weighted.__name__ = f"Weighted{base.__name__}"
    return Weighted


class _WeightCollator:
    """Takes `weight` out of each example before TRL's collator and puts it back as one tensor."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        weights = [float(e.pop("weight", 1.0)) for e in examples]
        batch = self.inner(examples)
        batch["weight"] = torch.tensor(weights, dtype=torch.float32)
        return batch


def fingerprint(rows: Sequence[dict[str, Any]], settings: LMSettings) -> str:
    """What must be equal for a rerun to resume a checkpoint: the rows and the settings."""
    payload = json.dumps({"rows": list(rows), "settings": asdict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_trainer(rows: Sequence[dict[str, Any]], out: Path, settings: LMSettings, progress: bool = False) -> tuple[Any, Any]:
    """The TRL trainer for `rows` (weights honoured) and its interrupt callback; checks come first."""
    where = str(out)
    form = check_rows(rows, settings.method, where)
    weights = _row_weights(rows, where)
    folder = resolve_model(settings.model)
    check_memory(folder, settings)

    from datasets import Dataset
    from peft import LoraConfig

    from .lm_models import device

    model, tokenizer = load_model(settings.model)
    if not progress:
        import datasets

        datasets.disable_progress_bars()
    keep = ("messages",) if form == "messages" else ("prompt", "completion") if form == "prompt-completion" else ("prompt", "chosen", "rejected")
    data = Dataset.from_list([{**{k: row[k] for k in keep}, "weight": w} for row, w in zip(rows, weights)])
    peft_config = (
        LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        if settings.lora else None
    )
    common = dict(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=settings.batch_size, num_train_epochs=settings.epochs,
        max_steps=settings.max_steps, learning_rate=settings.lr(), logging_steps=1, save_strategy="steps",
        save_steps=settings.save_steps, save_total_limit=1, report_to=[], disable_tqdm=True, seed=settings.seed,
        data_seed=settings.seed, use_cpu=device() == "cpu", dataloader_num_workers=0, lr_scheduler_type="linear",
        warmup_steps=0, gradient_checkpointing=False, bf16=False, fp16=False,
    )
    from transformers import TrainingArguments

    if "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        # transformers renamed it (the old name warns at every run); TRL's configs default the old one to True
        common["activation_checkpointing"] = common.pop("gradient_checkpointing")
    interrupt, bar = _callbacks(out / "train_log.jsonl", progress)
    if settings.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, beta=settings.beta, max_length=settings.max_length)
        trainer = _weighted(DPOTrainer)(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft_config)
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, max_length=settings.max_length, packing=False)
        trainer = _weighted(SFTTrainer)(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft_config)
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise LMError(f"{where}: every row is longer than max_length={settings.max_length} tokens before its answer; raise max_length")
    if kept < len(rows):
        print(f"note: {len(rows) - kept} of {len(rows)} rows dropped: their answer lies beyond max_length={settings.max_length} tokens",
              file=sys.stderr)
    trainer.data_collator = _WeightCollator(trainer.data_collator)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the bar and train_log.jsonl say it; no dict printed per step
    trainer.add_callback(interrupt)
    trainer.add_callback(bar)
    trainer._synthloom = {"interrupt": interrupt, "bar": bar, "base_model": folder, "form": form}
    return trainer, tokenizer


def model_card(result: LMResult, settings: LMSettings, base: str, data: str) -> str:
    kind = "LoRA adapter" if settings.lora else "full fine-tune"
    if Path(base).is_absolute():  # a local folder (the embedded GGUF converted): its name, no path of this machine
        base = Path(base).name
    losses = f"{result.first_loss:.4f} -> {result.last_loss:.4f}" if result.losses else "not logged"
    return (
        f"---\nlibrary_name: {'peft' if settings.lora else 'transformers'}\nbase_model: {base}\ntags: [synthloom, trl, {settings.method}]\n---\n\n"
        f"# {kind} ({settings.method.upper()}) made by synthloom\n\n"
        f"- base model: `{base}`\n- training data: `{data}` ({result.rows} rows)\n- method: {settings.method}, "
        f"{'LoRA r=' + str(settings.lora_r) if settings.lora else 'all weights'}, {result.steps} steps, learning rate {settings.lr()}, "
        f"batch {settings.batch_size}, max length {settings.max_length}, seed {settings.seed}\n"
        f"- training loss (first -> last logged): {losses}\n- wall time: {result.seconds:.0f} s\n\n"
        "Records' curation weights were per-example loss weights. Load with "
        + ("`peft.AutoPeftModelForCausalLM.from_pretrained(<this folder>)`.\n" if settings.lora else "`transformers.AutoModelForCausalLM.from_pretrained(<this folder>)`.\n")
    )


def train_lm(rows: Sequence[dict[str, Any]], out: str | Path, settings: LMSettings | None = None,
             progress: bool = False, data_name: str = "rows") -> LMResult:
    """Fine-tune on `rows`; the model (adapter or full) ends in `<out>/model`. Resumes a matching checkpoint."""
    settings = settings or LMSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    mark = checkpoints / "synthloom-fingerprint.txt"
    key = fingerprint(rows, settings)
    resume: str | None = None
    if checkpoints.exists():
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(checkpoints))
        if last and mark.exists() and mark.read_text().strip() == key:
            resume = last
        else:
            shutil.rmtree(checkpoints)
    if resume is None:
        (out / "train_log.jsonl").unlink(missing_ok=True)
    trainer, tokenizer = build_trainer(rows, out, settings, progress)
    checkpoints.mkdir(parents=True, exist_ok=True)
    mark.write_text(key)
    resumed_from = int(Path(resume).name.rsplit("-", 1)[1]) if resume else None
    start = time.perf_counter()
    import resource

    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    state = trainer.state
    if trainer._synthloom["interrupt"].requested:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(checkpoints))
        raise TrainingInterrupted(Path(last) if last else None, state.global_step)
    losses = [(int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h]
    result = LMResult(
        model_dir=out / "model", method=settings.method, steps=state.global_step, rows=len(rows), resumed_from=resumed_from,
        losses=losses, seconds=seconds, peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    staging = out / "model.partial"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "README.md").write_text(model_card(result, settings, trainer._synthloom["base_model"], data_name), encoding="utf-8")
    (staging / "synthloom_training.json").write_text(json.dumps({
        "settings": asdict(settings), "base_model": trainer._synthloom["base_model"], "data": data_name, "rows": len(rows),
        "steps": result.steps, "losses": losses, "seconds": round(seconds, 2), "resumed_from": resumed_from,
    }, indent=2), encoding="utf-8")
    shutil.rmtree(out / "model", ignore_errors=True)
    staging.rename(out / "model")
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result


__all__ = ["LMResult", "LMSettings", "TrainingInterrupted", "build_trainer", "check_rows", "fingerprint", "model_card", "train_lm"]
