"""What the machine did while a benchmark ran: CPU time spent, and the share the hypervisor took (steal).

On a virtual machine another tenant's load shows up as *steal*: time a
virtual CPU was ready to run but the host ran something else. The benchmarks
print it beside their figures, so a slow run can be told apart from slow code,
and the CPU time all processes spent (ours, PostgreSQL's, the broker's), which
steal does not inflate. Reads ``/proc/stat`` (Linux); elsewhere there is
nothing to report.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
# Columns after the "cpu" label: user nice system idle iowait irq softirq steal (guest time is in user).
BUSY_COLUMNS = (0, 1, 2, 5, 6)
STEAL_COLUMN = 7
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_ticks() -> tuple[int, int, int] | None:
    """(busy, steal, total) ticks of all CPUs since boot, or ``None`` where ``/proc/stat`` is missing."""
    try:
        first = PROC_STAT.read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in first[1:9]]
    return sum(ticks[column] for column in BUSY_COLUMNS), ticks[STEAL_COLUMN], sum(ticks)


@dataclass
class Steal:
    """During a block: the share of CPU time stolen, and the CPU seconds every process spent (``None``: unknown)."""

    share: float | None = None
    busy_seconds: float | None = None

    def __str__(self) -> str:
        return "steal unknown" if self.share is None else f"{self.share:.0%} of CPU time stolen by the host"


@contextlib.contextmanager
def stolen() -> Iterator[Steal]:
    """Measure steal and CPU time spent for the length of the block."""
    result, before = Steal(), _cpu_ticks()
    try:
        yield result
    finally:
        after = _cpu_ticks()
        if before is not None and after is not None and after[2] > before[2]:
            result.share = (after[1] - before[1]) / (after[2] - before[2])
            result.busy_seconds = (after[0] - before[0]) / TICKS_PER_SECOND
