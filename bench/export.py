"""Export benchmark: a ~300 MB synthetic app onto the busybox run image, cold and with a previous
image, against upstream's exporter (v0.21.17 from `make tools`, `-layout`) on the same workload
(interleaved rounds, ``BENCH_ROUNDS``, default 3; medians),
`tar -c | pigz -6` and `umoci repack` of the same tree; then the same export to a
docker-registry on 127.0.0.1 beside `skopeo copy` of the finished layout image to that registry,
all measured in the same run.

Run with `make bench`. Prints wall time, peak memory (largest process) and ratios; not a test.
`bench/export.py --registry` runs only the registry part: the cold layout export (the budget's first
term and skopeo's source), the registry export and `skopeo copy`.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support.services starts the registry; gotools finds upstream
from tests.support.gotools import tool_path  # noqa: E402
from tests.support.peak import run_for_peak  # noqa: E402

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


def timed(cmd: list[str] | str, *, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the largest process of ``cmd``, measured from a small
    starter (tests/support/peak.py): started from this process, it would report this one's peak."""
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
    done = run_for_peak(argv, env=env, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed: {cmd}\n{done.stderr}")
    return done.wall, done.peak_mib


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    registry_only = "--registry" in sys.argv[1:]
    work = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    try:
        app, layers, oci = work / "workspace", work / "layers", work / "oci"
        size = make_app(app)
        (layers / "config").mkdir(parents=True)
        (layers / "config" / "metadata.toml").write_text("")  # the builder's output; upstream requires it
        (layers / "group.toml").write_text("")
        env = {**os.environ, "CNB_PLATFORM_API": "0.15", "PATH": f"{BIN}:{os.environ['PATH']}"}
        if registry_only:
            common = ["-oci", "-oci-dir", str(oci), "-layers", str(layers)]
            shutil.copytree(FIXTURE, oci)
            subprocess.run([str(BIN / "analyzer"), *common, "-run-image", "busybox", "bench-app"], env=env,
                           check=True, stdout=subprocess.DEVNULL)
            load_before = os.getloadavg()[0]
            cold = timed([str(BIN / "exporter"), *common, "-app", str(app), "bench-app"], env=env)
            pushed, skopeo = registry_export(work, app, env,
                                             oci / "index.docker.io" / "library" / "bench-app" / "latest")
            print(f"app: {size / (1 << 20):.0f} MiB; load average {load_before:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after the run")
            print_registry(cold, pushed, skopeo)
            return
        load_before = os.getloadavg()[0]
        runs = exporter_rounds(work, app, layers, env, rounds)
        load_after = os.getloadavg()[0]
        cold, warm = _median(runs["ours cold"]), _median(runs["ours warm"])
        up_cold, up_warm = _median(runs["upstream cold"]), _median(runs["upstream warm"])
        image = oci / "index.docker.io" / "library" / "bench-app" / "latest"
        app_blob = max((p.stat().st_size for p in (image / "blobs" / "sha256").iterdir()), default=0)
        pigz = timed(f"tar -C {work} -cf - workspace | pigz -6 > {work}/ref.tgz")
        pigz_size = (work / "ref.tgz").stat().st_size
        umoci = umoci_repack(work, app)
        pushed, skopeo = registry_export(work, app, env, image)
        mib = size / (1 << 20)
        print(f"app: {mib:.0f} MiB in {sum(1 for _ in app.rglob('*'))} entries; 2 export threads; isal level 2")
        print(f"exporters: {rounds} interleaved rounds (ours cold, upstream cold, ours warm, upstream warm), "
              f"medians; load average {load_before:.1f} before, {load_after:.1f} after")
        print(f"{'what':<36}{'wall s':>8}{'peak MiB':>10}{'vs pigz':>9}{'vs umoci':>9}")
        for name, (wall, peak) in (("exporter, cold", cold), ("exporter, with previous image", warm),
                                   ("tar -c | pigz -6 (reference)", pigz), ("umoci repack (reference)", umoci)):
            print(f"{name:<36}{wall:>8.2f}{peak:>10.0f}{wall / pigz[0]:>9.2f}{wall / umoci[0]:>9.2f}")
        print(f"compressed app layer: {app_blob / (1 << 20):.1f} MiB (pigz -6: {pigz_size / (1 << 20):.1f} MiB)")
        print(f"{'upstream v0.21.17 (-layout), same run':<36}{'wall s':>8}{'peak MiB':>10}{'ours/upstream':>15}")
        for name, kind, (wall, peak) in (("upstream exporter, cold", "cold", up_cold),
                                         ("upstream exporter, previous image", "warm", up_warm)):
            ratios = [o[0] / u[0] for o, u in zip(runs[f"ours {kind}"], runs[f"upstream {kind}"], strict=True)]
            print(f"{name:<36}{wall:>8.2f}{peak:>10.0f}{statistics.median(ratios):>15.2f}  "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
        for kind in ("cold", "warm"):  # upstream's peak moves with its garbage collector from round to round
            print(f"peak MiB per round, {kind}: ours "
                  + ", ".join(f"{r[1]:.1f}" for r in runs[f"ours {kind}"]) + "; upstream "
                  + ", ".join(f"{r[1]:.1f}" for r in runs[f"upstream {kind}"]))
        ours_blobs = sum(p.stat().st_size for p in (image / "blobs" / "sha256").iterdir())
        up_image = work / "oci-upstream" / "index.docker.io" / "library" / "bench-app" / "latest"
        up_blobs = sum(p.stat().st_size for p in (up_image / "blobs" / "sha256").iterdir())
        print(f"app image blobs: ours {ours_blobs / (1 << 20):.1f} MiB, upstream {up_blobs / (1 << 20):.1f} MiB")
        print_registry(cold, pushed, skopeo)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_registry(cold: tuple[float, float], pushed: tuple[float, float], skopeo: tuple[float, float]) -> None:
    """The registry export beside the layout export and ``skopeo copy`` (issue 15's budget)."""
    print(f"{'to a registry on 127.0.0.1':<36}{'wall s':>8}{'peak MiB':>10}{'vs layout+skopeo':>18}")
    budget = cold[0] + skopeo[0]
    for name, (wall, peak) in (("exporter, cold, to the registry", pushed), ("exporter, cold, to a layout", cold),
                               ("skopeo copy of the layout image", skopeo)):
        print(f"{name:<36}{wall:>8.2f}{peak:>10.0f}{wall / budget:>18.2f}")
    print(f"budget (issue 15): exporter to the registry <= layout export + skopeo copy = {budget:.2f} s, "
          "peak < 100 MiB")


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall time, largest peak memory."""
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def exporter_rounds(work: Path, app: Path, layers: Path, env: dict[str, str], rounds: int
                    ) -> dict[str, list[tuple[float, float]]]:
    """Ours and upstream's exporter (`make tools`, `-layout`) on the same app and layers, interleaved
    so that both see the same machine load: each round exports cold into fresh layouts (ours, then
    upstream's), then again with that image as previous image. Ours goes to ``work/oci``, upstream's
    to ``work/oci-upstream`` (the last round's images stay there)."""
    lifecycle, launcher = tool_path("lifecycle"), tool_path("launcher")
    for tool in (lifecycle, launcher):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is not installed (run `make tools`)")
    bindir = work / "upstream-bin"
    bindir.mkdir()
    for phase in ("analyzer", "exporter"):
        (bindir / phase).symlink_to(lifecycle)
    oci, up_oci = work / "oci", work / "oci-upstream"
    ours = ["-oci", "-oci-dir", str(oci), "-layers", str(layers)]
    up_env = {**env, "CNB_EXPERIMENTAL_MODE": "silent"}
    up = ["-layout", "-layout-dir", str(up_oci), "-layers", str(layers), "-analyzed", str(work / "up-analyzed.toml")]
    commands = {
        "ours": (env, [str(BIN / "analyzer"), *ours, "-run-image", "busybox", "bench-app"],
                 [str(BIN / "exporter"), *ours, "-app", str(app), "bench-app"]),
        "upstream": (up_env, [str(bindir / "analyzer"), *up, "-run-image", "busybox", "bench-app"],
                     [str(bindir / "exporter"), *up, "-app", str(app), "-launcher", str(launcher),
                      "-report", str(work / "up-report.toml"), "bench-app"]),
    }
    runs: dict[str, list[tuple[float, float]]] = {f"{who} {kind}": [] for who in commands for kind in ("cold", "warm")}
    for _ in range(rounds):
        for layout in (oci, up_oci):
            shutil.rmtree(layout, ignore_errors=True)
            shutil.copytree(FIXTURE, layout)
        for kind in ("cold", "warm"):
            for who, (who_env, analyze, export) in commands.items():
                subprocess.run(analyze, env=who_env, check=True, stdout=subprocess.DEVNULL)
                runs[f"{who} {kind}"].append(timed(export, env=who_env))
    return runs


def registry_export(work: Path, app: Path, env: dict[str, str], layout_image: Path
                    ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Time a cold export of the same app to a docker-registry on 127.0.0.1, and `skopeo copy` of
    the layout export's image to the same registry (both into empty repositories)."""
    from tests.support.services import start_registry

    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is not installed (run `make install`, which installs it)")
    registry = start_registry(work / "registry")
    try:
        subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{FIXTURE}/index.docker.io/library/busybox/"
                        "latest", f"docker://{registry.host}/library/busybox:latest"], check=True,
                       stdout=subprocess.DEVNULL)
        layers = work / "registry-layers"
        (layers / "config").mkdir(parents=True)
        (layers / "group.toml").write_text("")
        common = ["-layers", str(layers), "-insecure-registry", registry.host]
        subprocess.run([str(BIN / "analyzer"), *common, "-run-image", f"{registry.host}/library/busybox",
                        f"{registry.host}/bench-app"], env=env, check=True, stdout=subprocess.DEVNULL)
        pushed = timed([str(BIN / "exporter"), *common, "-app", str(app), f"{registry.host}/bench-app"], env=env)
        copied = timed([skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout_image}:latest",
                        f"docker://{registry.host}/bench-skopeo:latest"])
        return pushed, copied
    finally:
        registry.stop()


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
