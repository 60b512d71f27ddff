"""The progress bar of long work: records done, rate, ETA and failures.

Rendered with rich on a terminal; silent when disabled (tests, libraries).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RecordProgress:
    def __init__(self, total: int, description: str = "generating", enabled: bool = True):
        self.total = total
        self.enabled = enabled
        self._stats: Any = None
        self._failed = 0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rec/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/] · {task.fields[retries]} retries · {task.fields[cached]} cached"),
            TextColumn("{task.fields[spend]}"),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
            disable=not enabled,
            refresh_per_second=4,
        )
        self._spend: Any = None
        self._done = 0
        self._task = self._progress.add_task(description, total=total, rate="-", failed=0, retries=0, cached=0, spend="", note="")

    def watch(self, stats: Any) -> None:
        """Read retry and cache counts from a scheduler's stats as the bar advances."""
        self._stats = stats

    def show_spend(self, describe: Any) -> None:
        """Show `describe(records done)` (e.g. money so far and at the end) beside the counts."""
        self._spend = describe

    def note(self, text: str) -> None:
        """Show a line of state beside the counts (e.g. a provider batch's status while it is polled)."""
        if self.enabled:
            self._progress.update(self._task, note=f"· {text}" if text else "")

    def advance(self, record: Any) -> None:
        if not self.enabled:
            return
        self._done += 1
        if record is None:
            self._failed += 1
        task = self._progress.tasks[0]
        speed = task.speed
        fields: dict[str, Any] = {"failed": self._failed, "rate": f"{speed:.1f}" if speed else "-"}
        if self._stats is not None:
            fields["retries"] = sum(self._stats.tries_failed.values())
            fields["cached"] = self._stats.cache_hits
        if self._spend is not None:
            fields["spend"] = "· " + self._spend(self._done)
        self._progress.update(self._task, advance=1, **fields)

    def set(self, done: int, failed: int = 0) -> None:
        """Show counts reported from elsewhere (e.g. by the workers of a cluster)."""
        if self.enabled:
            self._failed = failed
            self._progress.update(self._task, completed=done, failed=failed)

    def __enter__(self) -> RecordProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)
