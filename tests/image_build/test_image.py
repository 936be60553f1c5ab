"""The lifecycle image, built offline from prepared inputs; the creator in it builds the sample app
as a non-root user, and the app image it writes runs under dockerd.

``make image-inputs`` (part of ``make test``; the install step) fetches what the image is made of:
the dependency wheels into ``dist/wheels`` (pip's index) and the debootstrap'd base rootfs tarball
(Debian mirror, cached under ``$LIFECYCLE_BASE_CACHE`` or /var/cache/lifecycle-base). This test uses
no network: it rebuilds only the package wheel (``make_wheels.sh --package-only``), imports the
cached tarball into the private dockerd, and builds and runs there. Missing inputs fail the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_MANIFEST, LAYOUT_REPO, REPO, built_launcher, require_tool
from tests.support.services import Dockerd

pytestmark = [pytest.mark.dockerd]

HERE = Path(__file__).resolve().parent
WHEELS = REPO / "dist" / "wheels"
BASE_CACHE = Path(os.environ.get("LIFECYCLE_BASE_CACHE") or "/var/cache/lifecycle-base")
BASE_TARBALL = BASE_CACHE / "bookworm-minbase-python3.tar"
BASE = "lifecycle-base:bookworm"
IMAGE = "cnb-lifecycle:test"
APP_IMAGE = "my-app:latest"
USER = 1000
PHASES = {"analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "launcher"}


def _sh(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> float:
    start = time.monotonic()
    res = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return time.monotonic() - start


def _dist_name(requirement: str) -> str:
    """``pydantic>=2.10,<3`` -> ``pydantic`` (normalised as wheel file names spell it)."""
    name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "_", name).lower()


def dependency_wheels() -> list[Path]:
    """The prepared dependency wheels; fails (never skips) when any direct dependency lacks one."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wheels = [p for p in sorted(WHEELS.glob("*.whl")) if not p.name.startswith("cnb_lifecycle-")]
    have = {p.name.split("-", 1)[0].lower() for p in wheels}
    missing = sorted(n for n in map(_dist_name, project["dependencies"]) if n not in have)
    if missing:
        pytest.fail(f"prepared image inputs are missing: no wheel for {', '.join(missing)} in {WHEELS}; "
                    "run `make image-inputs` (the install step; it uses the package index)")
    return wheels


def base_tarball() -> Path:
    if not BASE_TARBALL.is_file() or BASE_TARBALL.stat().st_size == 0:
        pytest.fail(f"prepared image inputs are missing: no base rootfs tarball at {BASE_TARBALL}; "
                    "run `make image-inputs` (the install step; it runs debootstrap)")
    return BASE_TARBALL


def build_image(dockerd: Dockerd, context: Path) -> dict[str, float]:
    """Context from the prepared wheels + the package wheel built offline, base imported from the
    cached tarball, ``docker build``; returns the seconds each step took."""
    wheels, tarball = dependency_wheels(), base_tarball()
    context.mkdir()
    out = context / "dist" / "wheels"
    out.mkdir(parents=True)
    for wheel in wheels:
        shutil.copy2(wheel, out / wheel.name)
    shutil.copy2(REPO / "Dockerfile", context / "Dockerfile")
    shutil.copy2(REPO / ".dockerignore", context / ".dockerignore")
    shutil.copytree(REPO / "cnb", context / "cnb", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    (context / "build" / "launcher").mkdir(parents=True)
    shutil.copy2(built_launcher(), context / "build" / "launcher" / "launcher")
    timings = {"package wheel": _sh(str(HERE / "make_wheels.sh"), "--package-only",
                                    str(REPO / ".venv" / "bin" / "python"), str(out))}
    env = dockerd.env() | {"LIFECYCLE_BASE_CACHE": str(tarball.parent)}
    timings["base import"] = _sh(str(HERE / "make_base.sh"), "--import-only", dockerd.host, BASE, env=env)
    start = time.monotonic()
    dockerd.run("build", "-q", "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, str(context), timeout=1800)
    timings["docker build"] = time.monotonic() - start
    return timings


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


def test_image_creator_builds_the_sample_app_as_non_root(dockerd: Dockerd, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    timings = build_image(dockerd, tmp_path / "context")

    # A platform's mounts: the layout root (busybox run image), the app, an empty layers dir; all
    # owned by the build user, as a platform prepares them.
    oci, app, layers = tmp_path / "oci", tmp_path / "workspace", tmp_path / "layers"
    shutil.copytree(LAYOUT_REPO, oci, symlinks=True)
    shutil.copytree(REPO / "samples" / "apps" / "hello", app, symlinks=True)
    layers.mkdir()
    for root in (oci, app, layers):
        _chown_tree(root, USER, USER)

    # One container (each costs a rootfs copy on vfs): what the image carries, then the creator
    # with the image's own sample buildpacks and order.
    script = ("set -e; ls /cnb/lifecycle; test -x /cnb/lifecycle/launcher; head -1 /cnb/lifecycle/lifecycle; "
              "test -f /cnb/order.toml; test -x /cnb/buildpacks/samples_hello/0.0.1/bin/build; "
              'exec /cnb/lifecycle/creator "$@"')
    start = time.monotonic()
    res = dockerd.run("run", "--rm", "--network", "none", "--user", f"{USER}:{USER}",
                      "-e", "CNB_PLATFORM_API=0.15", "-e", f"CNB_USER_ID={USER}", "-e", f"CNB_GROUP_ID={USER}",
                      "-v", f"{oci}:/oci", "-v", f"{app}:/workspace", "-v", f"{layers}:/layers",
                      "--entrypoint", "/bin/sh", IMAGE, "-c", script, "creator",
                      "-oci", "-layers", "/layers", "-app", "/workspace", "-buildpacks", "/cnb/buildpacks",
                      "-order", "/cnb/order.toml", "-run-image", "busybox", "my-app", check=False, timeout=600)
    timings["creator run"] = time.monotonic() - start
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "ERROR" not in out and "Traceback" not in out, out
    assert set(res.stdout.split()) >= PHASES, out
    assert "#!/opt/lifecycle/bin/python3" in res.stdout, out
    assert [line for line in res.stdout.splitlines() if line.startswith("===> ")] == [
        "===> ANALYZING", "===> DETECTING", "===> RESTORING", "===> BUILDING", "===> EXPORTING"], out
    assert "samples/hello 0.0.1" in out

    # The analyzer pinned the run image from the layout; everything was written as the build user.
    analyzed = tomllib.loads((layers / "analyzed.toml").read_text())
    assert analyzed["run-image"]["reference"] == (
        f"/oci/index.docker.io/library/busybox/latest@{BUSYBOX_MANIFEST}")
    assert analyzed["run-image"]["image"] == "/oci/index.docker.io/library/busybox/latest"
    image_dir = oci / "index.docker.io" / "library" / "my-app" / "latest"
    for written in (layers / "analyzed.toml", layers / "report.toml", image_dir / "index.json"):
        assert written.stat().st_uid == USER, written

    # The app image: loaded from the layout into the same dockerd, its default process (web) runs.
    start = time.monotonic()
    _sh(skopeo, "copy", "-q", "--dest-daemon-host", dockerd.host, f"oci:{image_dir}:latest",
        f"docker-daemon:{APP_IMAGE}", timeout=600)
    run = dockerd.run("run", "--rm", "--network", "none", APP_IMAGE)
    timings["app load+run"] = time.monotonic() - start
    assert run.stdout.splitlines() == ["Hello from samples/hello", "Hello, world!"], run.stdout + run.stderr
    print(f"lifecycle image timings (s): { {k: round(v, 1) for k, v in timings.items()} }")
