"""The peak starter reports a command's own peak memory, not the pytest worker's."""

from __future__ import annotations

import sys

from tests.support.peak import run_for_peak


def test_a_small_command_from_a_large_parent_reads_small() -> None:
    ballast = bytearray(160 << 20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touched, so it is resident in this process
    done = run_for_peak(["sh", "-c", "exit 7"])
    assert done.returncode == 7
    assert done.peak_mib < 20, done
    del ballast


def test_a_large_command_reads_large() -> None:
    grow = "b = bytearray(120 << 20); b[::4096] = b'x' * len(b[::4096])"
    done = run_for_peak([sys.executable, "-c", grow])
    assert done.returncode == 0, done.stderr
    assert 120 <= done.peak_mib < 160, done
