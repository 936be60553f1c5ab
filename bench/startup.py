"""Startup benchmark: the frozen phases (build/frozen, `make frozen`) against the installed console
scripts (.venv/bin), same machine, same run: `analyzer -help` and a full analyze of the busybox
layout (OCI mode), median and best of several runs.

Run with `make bench`. Prints wall times and the frozen executable's size; not a test.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "layout-repo"
BIN = Path(sys.executable).parent
FROZEN = REPO / "build" / "frozen"
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.monotonic() - start
    if res.returncode != 0:
        raise SystemExit(f"benchmark command failed: {cmd}\n{res.stderr.decode()}")
    return took


def main() -> None:
    if not os.access(FROZEN / "analyzer", os.X_OK):
        raise SystemExit(f"{FROZEN}/analyzer is missing: run `make frozen`")
    work = Path(tempfile.mkdtemp(prefix="lifecycle-startup-"))
    try:
        oci = work / "oci"
        shutil.copytree(FIXTURE, oci)
        env = {**os.environ, "CNB_PLATFORM_API": "0.15"}
        rows = []
        for what, args in (("analyzer -help", ["-help"]),
                           ("analyze (busybox layout)", ["-oci", "-oci-dir", str(oci), "-layers", str(work),
                                                         "-run-image", "busybox", "bench-app"])):
            for kind, exe in (("console script", BIN / "analyzer"), ("frozen", FROZEN / "analyzer")):
                wall([str(exe), *args], env)  # warm the page cache (and the frozen one's first unpack)
                times = [wall([str(exe), *args], env) for _ in range(RUNS)]
                rows.append((what, kind, statistics.median(times), min(times)))
        size = (FROZEN / "lifecycle").stat().st_size
        print(f"startup, {RUNS} runs each; frozen executable {size / (1 << 20):.1f} MiB")
        print(f"{'what':<28}{'how':<16}{'median s':>10}{'best s':>9}")
        for what, kind, median, best in rows:
            print(f"{what:<28}{kind:<16}{median:>10.3f}{best:>9.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
