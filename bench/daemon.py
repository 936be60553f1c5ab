"""Daemon rebuild benchmark: pack's loop (build into the Docker daemon, change one app file, build
again) against a private dockerd, next to `docker load` of the full app image, in the same run.

The rebuild sends the daemon only the layers whose layer chain it lacks (the changed app layer and
the lifecycle layers above it; spec/registry-and-daemon.md). The reference is what exporting every
layer costs the daemon at least: `docker load` of the whole image (from `docker save`, not timed)
after `docker rmi`, with the run image still there, as in the rebuild.

Run with `make bench` (needs root, dockerd and skopeo). Prints wall times; not a test. The app is
smaller than bench/export.py's (vfs storage copies the whole file system for every layer).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.services import start_dockerd  # noqa: E402

BUSYBOX = REPO / "tests" / "fixtures" / "layout-repo" / "index.docker.io" / "library" / "busybox" / "latest"
BIN = Path(sys.executable).parent


def make_app(root: Path) -> int:
    """2,000 small text files, 2 x 16 MiB random, 8 MiB text (seeded)."""
    r = random.Random(7)
    (root / "big").mkdir(parents=True)
    for i in range(2):
        (root / "big" / f"rand{i}.bin").write_bytes(r.randbytes(16 << 20))
    letters = "abcdefghijklmnopqrstuvwxyz "
    (root / "big" / "log.txt").write_text("".join(r.choice(letters) for _ in range(8 << 20)))
    for d in range(20):
        sub = root / "small" / f"d{d:02d}"
        sub.mkdir(parents=True)
        for i in range(100):
            (sub / f"f{i:03d}.txt").write_text("".join(r.choice(letters) for _ in range(r.randint(200, 2000))))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if res.returncode != 0:
        raise SystemExit(f"benchmark command failed: {argv}\n{res.stdout}\n{res.stderr}")
    return wall


def main() -> None:
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (run `make install`)")
    daemon = start_dockerd()
    work = Path(tempfile.mkdtemp(prefix="lifecycle-bench-daemon-"))
    try:
        env = {**daemon.env(), "CNB_PLATFORM_API": "0.15", "PATH": f"{BIN}:{os.environ['PATH']}"}
        subprocess.run(["skopeo", "copy", "--dest-daemon-host", daemon.host, f"oci:{BUSYBOX}",
                        "docker-daemon:busybox:latest"], check=True, capture_output=True)
        app, layers = work / "workspace", work / "layers"
        size = make_app(app)
        (layers / "config").mkdir(parents=True)
        (layers / "group.toml").write_text("")
        common = ["-daemon", "-layers", str(layers)]
        analyze = [str(BIN / "analyzer"), *common, "-run-image", "busybox:latest", "bench-app"]
        export = [str(BIN / "exporter"), *common, "-app", str(app), "bench-app"]
        timed(analyze, env)
        cold = timed(export, env)
        (app / "small" / "d00" / "f000.txt").write_text("one changed file\n")
        timed(analyze, env)
        rebuild = timed(export, env)
        archive = work / "full.tar"
        daemon.run("save", "-o", str(archive), "bench-app")
        daemon.run("rmi", "bench-app")
        docker = shutil.which("docker") or "docker"
        load = timed([docker, "-H", daemon.host, "load", "-i", str(archive)], env)
        print(f"app: {size / (1 << 20):.0f} MiB in {sum(1 for _ in app.rglob('*'))} entries; dockerd with vfs storage")
        print(f"{'what':<58}{'wall s':>8}{'vs load':>9}")
        for name, wall in (("exporter -daemon, first build", cold),
                           ("exporter -daemon, rebuild after a one-file app change", rebuild),
                           ("docker load of the full image (reference)", load)):
            print(f"{name:<58}{wall:>8.2f}{wall / load:>9.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        daemon.stop()


if __name__ == "__main__":
    main()
