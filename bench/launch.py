"""Launch benchmark: `/cnb/process/<type>` running `true` against running `true` directly, many
runs each, in the same run, on a fake app filesystem with two buildpacks' layers (env files, bin/).

Run with `make bench` (after `make launcher`). Prints the launcher's size and the median and mean
overhead per launch; not a test. Goal: under 5 ms and under 3 MB.
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
sys.path.insert(0, str(REPO))

from lifecycle.files.metadata import BuildMetadata  # noqa: E402
from lifecycle.launch.table import write_table  # noqa: E402

LAUNCHER = REPO / "build" / "launcher" / "launcher"
RUNS = 500


def make_image(root: Path) -> dict[str, str]:
    """Layers, app dir and a /cnb/process/true link under root; the launch environment."""
    true = shutil.which("true") or "/bin/true"
    layers, app = root / "layers", root / "workspace"
    app.mkdir(parents=True)
    meta = BuildMetadata.model_validate({
        "buildpacks": [{"id": "bench/one", "api": "0.10"}, {"id": "bench/two", "api": "0.12"}],
        "processes": [{"type": "true", "command": [true], "buildpack-id": "bench/one"}],
    })
    write_table(layers / "config", meta)
    for bp in ("bench_one", "bench_two"):
        for layer in ("a", "b"):
            env = layers / bp / layer / "env.launch"
            env.mkdir(parents=True)
            (layers / bp / layer / "bin").mkdir()
            for i in range(5):
                (env / f"VAR_{i}.append").write_text(f"{bp}{layer}")
                (env / f"VAR_{i}.delim").write_text(":")
    (root / "process").mkdir()
    (root / "process" / "true").symlink_to(LAUNCHER)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "CNB_PLATFORM_API": "0.15", "CNB_LAYERS_DIR": str(layers),
            "CNB_APP_DIR": str(app)}


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    return time.perf_counter() - start


def main() -> int:
    if not LAUNCHER.is_file():
        print(f"ERROR: {LAUNCHER} is missing: run `make launcher`", file=sys.stderr)
        return 2
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        env = make_image(Path(tmp))
        entry = str(Path(tmp) / "process" / "true")
        for _ in range(20):  # warm the page cache for both
            timed([entry], env)
            timed([true], env)
        direct, launched = [], []
        for _ in range(RUNS):  # interleaved, so machine load hits both alike
            direct.append(timed([true], env))
            launched.append(timed([entry], env))
    size = os.path.getsize(LAUNCHER)
    med = (statistics.median(launched) - statistics.median(direct)) * 1000
    mean = (statistics.fmean(launched) - statistics.fmean(direct)) * 1000
    print(f"launcher: {size} bytes ({size / 1024 / 1024:.2f} MiB; goal < 3 MiB)")
    print(f"`true` directly:            median {statistics.median(direct) * 1000:.2f} ms over {RUNS} runs")
    print(f"/cnb/process/true (launcher): median {statistics.median(launched) * 1000:.2f} ms over {RUNS} runs")
    print(f"launch overhead: median {med:.2f} ms, mean {mean:.2f} ms (goal < 5 ms); "
          "2 buildpacks x 2 layers, 20 env files, bin/ dirs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
