"""Wall time and peak memory of one command, measured from a small starter process.

A child's ``ru_maxrss`` starts from the high-water mark of the memory it shared with its parent
before ``exec`` (``subprocess`` and ``posix_spawn`` start children with vfork semantics), so a
command started straight from a large process (a pytest worker, a benchmark that has just made its
workload) reports that process's peak, not its own. The starter here is a bare interpreter
(``-I -S``, only ``os`` and ``time``): about 8 MiB, an upper bound on what it can add.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

_STARTER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.monotonic()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {time.monotonic() - start} {usage.ru_maxrss}")
"""


@dataclass(frozen=True)
class Peak:
    """How a command ended: exit code, wall seconds, peak resident memory, its stderr."""

    returncode: int
    wall: float
    peak_kib: int
    stderr: str

    @property
    def peak_mib(self) -> float:
        """Peak resident memory in MiB."""
        return self.peak_kib / 1024


def run_for_peak(argv: list[str], *, env: Mapping[str, str] | None = None, stdout: IO[str] | int | None = None,
                 timeout: float = 900) -> Peak:
    """Run ``argv`` (``stdout`` where given, stderr captured) and measure it from the starter."""
    with tempfile.NamedTemporaryFile("r", prefix="peak-", suffix=".txt") as result:
        res = subprocess.run([sys.executable, "-I", "-S", "-c", _STARTER, result.name, *argv],
                             env=dict(env if env is not None else os.environ), stdout=stdout,
                             stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)
        fields = result.read().split()
    if len(fields) != 3:
        raise RuntimeError(f"the peak starter failed ({res.returncode}): {res.stderr}")
    return Peak(int(fields[0]), float(fields[1]), int(fields[2]), res.stderr)
