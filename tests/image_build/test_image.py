"""The lifecycle image: built offline from a debootstrap'd base, its phases run as a non-root user.

Preparation uses package registries only (Debian mirror for the base rootfs, cached as a tarball
under ``$LIFECYCLE_BASE_CACHE`` or /var/cache/lifecycle-base; pip's index for the wheels); the
build and the container run use nothing but the private dockerd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_MANIFEST, LAYOUT_REPO, REPO
from tests.support.services import Dockerd

pytestmark = [pytest.mark.dockerd]

HERE = Path(__file__).resolve().parent
BASE = "lifecycle-base:bookworm"
IMAGE = "cnb-lifecycle:test"


def _sh(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> float:
    start = time.monotonic()
    res = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return time.monotonic() - start


def build_image(dockerd: Dockerd, context: Path) -> dict[str, float]:
    """make_base.sh, make_wheels.sh, docker build; returns the seconds each took."""
    timings = {"base": _sh(str(HERE / "make_base.sh"), dockerd.host, BASE, env=dockerd.env())}
    context.mkdir()
    shutil.copy2(REPO / "Dockerfile", context / "Dockerfile")
    shutil.copy2(REPO / ".dockerignore", context / ".dockerignore")
    shutil.copytree(REPO / "cnb", context / "cnb", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    timings["wheels"] = _sh(str(HERE / "make_wheels.sh"), str(REPO / ".venv" / "bin" / "python"),
                            str(context / "dist" / "wheels"))
    start = time.monotonic()
    dockerd.run("build", "-q", "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, str(context), timeout=1800)
    timings["build"] = time.monotonic() - start
    return timings


def test_image_builds_and_runs_analyzer_as_non_root(dockerd: Dockerd, tmp_path: Path) -> None:
    timings = build_image(dockerd, tmp_path / "context")
    print(f"lifecycle image timings (s): {timings}")

    oci = tmp_path / "oci"
    shutil.copytree(LAYOUT_REPO, oci, symlinks=True)
    layers = tmp_path / "layers"
    layers.mkdir()
    os.chown(layers, 1000, 1000)
    for path in [oci, *oci.rglob("*")]:
        os.chown(path, 1000, 1000, follow_symlinks=False)
    out = dockerd.run("run", "--rm", "--network", "none", "--user", "1000:1000",
                      "-e", "CNB_PLATFORM_API=0.15", "-e", "CNB_USER_ID=1000", "-e", "CNB_GROUP_ID=1000",
                      "-v", f"{oci}:/oci", "-v", f"{layers}:/layers", IMAGE,
                      "/cnb/lifecycle/analyzer", "-oci", "-run-image", "busybox", "my-app")
    assert "ERROR" not in out.stdout, out.stdout + out.stderr
    analyzed = tomllib.loads((layers / "analyzed.toml").read_text())
    assert analyzed["run-image"]["reference"] == (
        f"/oci/index.docker.io/library/busybox/latest@{BUSYBOX_MANIFEST}")
    assert analyzed["run-image"]["image"] == "/oci/index.docker.io/library/busybox/latest"
    assert (layers / "analyzed.toml").stat().st_uid == 1000

    # The image carries every entry point, the sh launcher, and runs phases on its own venv.
    listing = dockerd.run("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c",
                          "ls /cnb/lifecycle && test -x /cnb/lifecycle/launcher && head -1 /cnb/lifecycle/lifecycle"
                          " && /cnb/lifecycle/exporter -version")
    names = set(listing.stdout.split())
    assert {"analyzer", "detector", "restorer", "builder", "exporter", "creator", "launcher"} <= names
    assert "#!/opt/lifecycle/bin/python3" in listing.stdout
