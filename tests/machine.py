"""What the machine did while a benchmark ran: the share of CPU time the hypervisor took (steal).

On a virtual machine another tenant's load shows up as *steal*: time a
virtual CPU was ready to run but the host ran something else. The benchmarks
print it beside their figures, so a slow run can be told apart from slow code.
Reads ``/proc/stat`` (Linux); elsewhere there is nothing to report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
STEAL_COLUMN = 7  # user nice system idle iowait irq softirq steal ... (after the "cpu" label)


def _cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) ticks of all CPUs since boot, or ``None`` where ``/proc/stat`` is missing."""
    try:
        first = PROC_STAT.read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in first[1:9]]  # guest time is already counted in user time
    return ticks[STEAL_COLUMN], sum(ticks)


@dataclass
class Steal:
    """The share of CPU time stolen during a block (``None`` until it ends, or where unknown)."""

    share: float | None = None

    def __str__(self) -> str:
        return "steal unknown" if self.share is None else f"{self.share:.0%} of CPU time stolen by the host"


@contextlib.contextmanager
def stolen() -> Iterator[Steal]:
    """Measure steal for the length of the block."""
    result, before = Steal(), _cpu_ticks()
    try:
        yield result
    finally:
        after = _cpu_ticks()
        if before is not None and after is not None and after[1] > before[1]:
            result.share = (after[0] - before[0]) / (after[1] - before[1])
