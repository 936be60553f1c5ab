"""Launch benchmark: `/cnb/process/<type>` running `true` against running `true` directly, many
runs each, in the same run, on a fake app filesystem with two buildpacks' layers (env files, bin/).

Run with `make bench` (after `make launcher`). Prints the launcher's size and, per launch, the median
wall-clock overhead and the mean CPU overhead (user + system of the child processes, which machine load
inflates less than wall time), with upstream's launcher v0.21.17 on the same files for reference when
it is installed; not a test. Goal: under 5 ms and under 3 MB.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lifecycle.files import metadata as metadata_file  # noqa: E402
from lifecycle.launch.table import write_table  # noqa: E402
from tests.support.gotools import tool_path  # noqa: E402

LAUNCHER = REPO / "build" / "launcher" / "launcher"
RUNS = 500


def make_image(root: Path) -> dict[str, str]:
    """Layers, app dir and a /cnb/process/true link under root; the launch environment."""
    true = shutil.which("true") or "/bin/true"
    layers, app = root / "layers", root / "workspace"
    app.mkdir(parents=True)
    meta = metadata_file.BuildMetadata.model_validate({
        "buildpacks": [{"id": "bench/one", "api": "0.10"}, {"id": "bench/two", "api": "0.12"}],
        "processes": [{"type": "true", "command": [true], "buildpack-id": "bench/one"}],
    })
    write_table(layers / "config", meta)
    metadata_file.write(layers / "config" / "metadata.toml", meta)  # what upstream's launcher reads
    for bp in ("bench_one", "bench_two"):
        for layer in ("a", "b"):
            env = layers / bp / layer / "env.launch"
            env.mkdir(parents=True)
            (layers / bp / layer / "bin").mkdir()
            for i in range(5):
                (env / f"VAR_{i}.append").write_text(f"{bp}{layer}")
                (env / f"VAR_{i}.delim").write_text(":")
    for name, target in (("process", LAUNCHER), ("upstream", tool_path("launcher"))):
        (root / name).mkdir()
        (root / name / "true").symlink_to(target)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "CNB_PLATFORM_API": "0.15", "CNB_LAYERS_DIR": str(layers),
            "CNB_APP_DIR": str(app)}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and child CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> int:
    if not LAUNCHER.is_file():
        print(f"ERROR: {LAUNCHER} is missing: run `make launcher`", file=sys.stderr)
        return 2
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        env = make_image(Path(tmp))
        cands = {"true": [true], "launcher": [str(Path(tmp) / "process" / "true")]}
        if os.access(tool_path("launcher"), os.X_OK):
            cands["upstream"] = [str(Path(tmp) / "upstream" / "true")]
        for _ in range(20):  # warm the page cache
            for argv in cands.values():
                timed(argv, env | {"CNB_DEPRECATION_MODE": "quiet", "CNB_NO_COLOR": "true"})
        wall: dict[str, list[float]] = {k: [] for k in cands}
        cpu: dict[str, list[float]] = {k: [] for k in cands}
        for _ in range(RUNS):  # interleaved, so machine load hits all alike
            for name, argv in cands.items():
                w, c = timed(argv, env | {"CNB_DEPRECATION_MODE": "quiet", "CNB_NO_COLOR": "true"})
                wall[name].append(w)
                cpu[name].append(c)
    size = os.path.getsize(LAUNCHER)
    print(f"launcher: {size} bytes ({size / 1024 / 1024:.2f} MiB; goal < 3 MiB); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    base_wall, base_cpu = statistics.median(wall["true"]), statistics.fmean(cpu["true"])
    print(f"`true` directly: median {base_wall * 1000:.2f} ms wall, mean {base_cpu * 1000:.2f} ms CPU, {RUNS} runs")
    for name in cands:
        if name == "true":
            continue
        label = "/cnb/process/true" if name == "launcher" else "upstream launcher v0.21.17, same files"
        print(f"{label}: overhead median {(statistics.median(wall[name]) - base_wall) * 1000:.2f} ms wall, "
              f"mean {(statistics.fmean(cpu[name]) - base_cpu) * 1000:.2f} ms CPU (goal < 5 ms); "
              "2 buildpacks x 2 layers, 20 env files, bin/ dirs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
