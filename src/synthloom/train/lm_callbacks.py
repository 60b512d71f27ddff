"""What a training run shows and how it stops: the progress bar, the loss log, Ctrl-C.

Two transformers `TrainerCallback`s for `train.lm`: `Bar` draws steps, the
latest loss and the time left with rich on stderr, and appends every
logged loss to `train_log.jsonl`; `Interrupt` turns the first SIGINT into
"save a checkpoint at the end of this step and stop" (a second one aborts).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any


def callbacks(log_path: Path, progress: bool) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        """The first Ctrl-C asks for a checkpoint and a stop at the end of the step; a second one aborts."""

        def __init__(self) -> None:
            self.requested = False
            self._previous: Any = None

        def _handle(self, signum: int, frame: Any) -> None:
            if self.requested:
                signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
                raise KeyboardInterrupt
            self.requested = True

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                self._previous = signal.signal(signal.SIGINT, self._handle)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self._previous is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, self._previous)

    class Bar(TrainerCallback):
        """Steps, loss and time left on stderr; every logged loss in train_log.jsonl."""

        def __init__(self) -> None:
            self.bar = Progress(
                TextColumn("[bold]fine-tuning"), BarColumn(), MofNCompleteColumn(), TextColumn("steps · loss {task.fields[loss]}"),
                TextColumn("· left"), TimeRemainingColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), disable=not progress, refresh_per_second=2,
            )
            self.task: Any = None
            self.losses: list[tuple[int, float]] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar.start()
            self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step, loss="-")

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                loss = float(logs["loss"])
                self.losses.append((state.global_step, loss))
                self.bar.update(self.task, loss=f"{loss:.3f}")
                with log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, "loss": loss, "time": time.time()}) + "\n")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar.stop()

    return Interrupt(), Bar()


__all__ = ["callbacks"]
