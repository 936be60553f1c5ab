"""Export benchmark: a ~300 MB synthetic app onto the busybox run image, cold and with a previous
image, against upstream's exporter (`lifecycle` v0.21.17 from `make tools`, `-layout`) on the same
workload, and against `tar -c | pigz -6` and `umoci repack` of the same tree, all in the same run.

Run with `make bench`. Prints wall time, peak memory (largest process), output size and ratios;
not a test. Both exporters put the same launcher (upstream's) into their images.
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
from tests.support.gotools import tool_path  # noqa: E402  (the locator the tests use)

FIXTURE = REPO / "tests" / "fixtures" / "layout-repo"
BIN = Path(sys.executable).parent


def make_app(root: Path) -> int:
    """20,000 small text files in 200 dirs, 3 x 64 MiB random, 48 MiB text (seeded)."""
    r = random.Random(42)
    (root / "big").mkdir(parents=True)
    for i in range(3):
        with open(root / "big" / f"rand{i}.bin", "wb") as f:
            for _ in range(64):
                f.write(r.randbytes(1 << 20))
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 10))) for _ in range(5000)]

    def text(n: int) -> str:
        out, size = [], 0
        while size < n:
            w = r.choice(words)
            out.append(w)
            size += len(w) + 1
        return " ".join(out)[:n] + "\n"

    with open(root / "big" / "log.txt", "w") as f:
        for _ in range(48):
            f.write(text(1 << 20))
    for d in range(200):
        sub = root / "small" / f"d{d:03d}"
        sub.mkdir(parents=True)
        for i in range(100):
            (sub / f"f{i:03d}.txt").write_text(text(r.randint(500, 6000)))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(cmd: list[str] | str, *, env: dict[str, str] | None = None, shell: bool = False) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the largest process of ``cmd``."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"benchmark command failed: {cmd}\n{err}")
    return wall, usage.ru_maxrss / 1024


def blobs_size(layout: Path) -> int:
    """Bytes of every blob in ``layout`` (what a copy of the image costs on disk)."""
    return sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())


def exporter_runs(name: str, exe: list[str], work: Path, app: Path, layers: Path, launcher: Path,
                  env: dict[str, str]) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Analyze + export cold, then analyze + export again with the first image as previous image
    (only the exports are timed); the two timings and the app image's blob bytes."""
    oci = work / f"oci-{name}"
    shutil.copytree(FIXTURE, oci)
    common = [*exe[1:], str(oci), "-layers", str(layers), "-analyzed", str(work / f"{name}-analyzed.toml")]
    analyzer, exporter = exe[0].format(phase="analyzer"), exe[0].format(phase="exporter")
    analyze = [analyzer, *common, "-run-image", "busybox", "bench-app"]
    export = [exporter, *common, "-app", str(app), "-launcher", str(launcher),
              "-report", str(work / f"{name}-report.toml"), "bench-app"]
    subprocess.run(analyze, env=env, check=True, stdout=subprocess.DEVNULL)
    cold = timed(export, env=env)
    subprocess.run(analyze, env=env, check=True, stdout=subprocess.DEVNULL)
    warm = timed(export, env=env)
    return cold, warm, blobs_size(oci / "index.docker.io" / "library" / "bench-app" / "latest")


def main() -> None:
    upstream, upstream_launcher = tool_path("lifecycle"), tool_path("launcher")
    for tool in (upstream, upstream_launcher):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is not installed (run `make tools`)")
    work = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    try:
        app, layers = work / "workspace", work / "layers"
        size = make_app(app)
        (layers / "config").mkdir(parents=True)
        (layers / "group.toml").write_text("")
        bindir = work / "upstream-bin"
        bindir.mkdir()
        for phase in ("analyzer", "exporter"):
            (bindir / phase).symlink_to(upstream)
        env = {**os.environ, "CNB_PLATFORM_API": "0.15", "CNB_EXPERIMENTAL_MODE": "silent",
               "PATH": f"{BIN}:{os.environ['PATH']}"}
        ours = exporter_runs("ours", [str(BIN / "{phase}"), "-oci", "-oci-dir"], work, app, layers,
                             upstream_launcher, env)
        theirs = exporter_runs("upstream", [str(bindir / "{phase}"), "-layout", "-layout-dir"], work, app, layers,
                               upstream_launcher, env)
        pigz = timed(f"tar -C {work} -cf - workspace | pigz -6 > {work}/ref.tgz", shell=True)
        pigz_size = (work / "ref.tgz").stat().st_size
        umoci = umoci_repack(work, app)
        mib = size / (1 << 20)
        print(f"app: {mib:.0f} MiB in {sum(1 for _ in app.rglob('*'))} entries; ours: 2 export threads, isal level 2")
        print(f"{'what':<44}{'wall s':>8}{'peak MiB':>10}{'vs upstream':>13}{'vs pigz':>9}{'vs umoci':>9}")
        rows = (("exporter (ours), cold", ours[0], theirs[0]),
                ("exporter (ours), with previous image", ours[1], theirs[1]),
                ("exporter (upstream v0.21.17), cold", theirs[0], theirs[0]),
                ("exporter (upstream v0.21.17), with previous", theirs[1], theirs[1]),
                ("tar -c | pigz -6 (reference)", pigz, None),
                ("umoci repack (reference)", umoci, None))
        for name, (wall, peak), base in rows:
            versus = f"{wall / base[0]:>13.2f}" if base else f"{'':>13}"
            print(f"{name:<44}{wall:>8.2f}{peak:>10.0f}{versus}{wall / pigz[0]:>9.2f}{wall / umoci[0]:>9.2f}")
        print(f"app image blobs: ours {ours[2] / (1 << 20):.1f} MiB, upstream {theirs[2] / (1 << 20):.1f} MiB "
              f"(tar -c | pigz -6 of the app alone: {pigz_size / (1 << 20):.1f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def umoci_repack(work: Path, app: Path) -> tuple[float, float]:
    """Time `umoci repack` of the same tree (bundle prepared beforehand, not timed)."""
    umoci = shutil.which("umoci")
    if umoci is None:
        raise SystemExit("umoci is not installed (run `make install`, which installs it)")
    layout, bundle = work / "umoci-layout", work / "umoci-bundle"
    subprocess.run([umoci, "init", "--layout", str(layout)], check=True)
    subprocess.run([umoci, "new", "--image", f"{layout}:t"], check=True)
    subprocess.run([umoci, "unpack", "--rootless", "--image", f"{layout}:t", str(bundle)], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.copytree(app, bundle / "rootfs" / "workspace", symlinks=True)
    return timed([umoci, "repack", "--image", f"{layout}:t", str(bundle)])


if __name__ == "__main__":
    main()
