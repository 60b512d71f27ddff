"""Per-kill accounting of a run killed again and again: what was answered, saved, and asked again.

A run killed with `kill -9` loses the answers in flight at the kill (sent by
the server, never written to the run's cache) and nothing else; a resume asks
exactly those again. Checking one total at the end nearly checks itself, so
this ledger keeps one row per kill, from the server's per-request answer
counts (`FakeOpenAIServer.answered`, or `GET /_stats?answered=1`) and the
number of answers in the run's cache:

- sent: answers the server sent during the run, until the kill settled;
- saved: how many of them the run's cache gained;
- lost: sent - saved (answered, never saved);
- reasked: requests this run had answered that a later run had answered again.

A sound run has, per kill, reasked == lost <= the requests in flight (the
recipe's concurrency). The soak benchmark and tests/test_faults.py use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass
class Kill:
    sent: int
    sent_total: int
    cached: int
    saved: int
    reasked: int = -1  # known once the run has completed

    @property
    def lost(self) -> int:
        return self.sent - self.saved


@dataclass
class KillLedger:
    kills: list[Kill] = field(default_factory=list)
    _snapshots: list[dict[str, int]] = field(default_factory=lambda: [{}])
    _cached: int = 0

    def after_kill(self, answered: Mapping[str, int], cached: int) -> Kill:
        """Record the state after a kill: the server's answers per request, the answers in the cache."""
        now, before = dict(answered), self._snapshots[-1]
        kill = Kill(sent=sum(now.values()) - sum(before.values()), sent_total=sum(now.values()),
                    cached=cached, saved=cached - self._cached)
        self._snapshots.append(now)
        self._cached = cached
        self.kills.append(kill)
        return kill

    def complete(self, answered: Mapping[str, int], cached: int) -> Kill:
        """The final, uninterrupted resume: fills in every kill's `reasked`; returns the final run's row."""
        final = dict(answered)
        for k, kill in enumerate(self.kills):
            before, after = self._snapshots[k], self._snapshots[k + 1]
            answered_here = [d for d, n in after.items() if n > before.get(d, 0)]
            kill.reasked = sum(1 for d in answered_here if final.get(d, 0) > after[d])
        last = self._snapshots[-1]
        return Kill(sent=sum(final.values()) - sum(last.values()), sent_total=sum(final.values()),
                    cached=cached, saved=cached - self._cached, reasked=0)

    def problems(self, in_flight: int) -> list[str]:
        """What breaks the promise, one line per kill; empty when every kill lost and re-asked only what was in flight."""
        out = []
        for i, kill in enumerate(self.kills, 1):
            if kill.reasked != kill.lost:
                out.append(f"kill {i}: {kill.lost} answers lost but {kill.reasked} requests asked again")
            if not 0 <= kill.lost <= in_flight:
                out.append(f"kill {i}: {kill.lost} answers lost, more than the {in_flight} requests in flight")
        return out

    def table(self) -> str:
        lines = ["| kill | answers sent in this run | sent in all | answers in the cache after | saved by this run "
                 "| lost (sent - saved) | asked again later |", "|---|---|---|---|---|---|---|"]
        for i, k in enumerate(self.kills, 1):
            lines.append(f"| {i} | {k.sent} | {k.sent_total} | {k.cached} | {k.saved} | {k.lost} | {k.reasked} |")
        return "\n".join(lines)


__all__ = ["Kill", "KillLedger"]
