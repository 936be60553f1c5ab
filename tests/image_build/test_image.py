"""The lifecycle image, built offline from the lifecycle tarball; the creator in it builds the sample
app as a non-root user, and the app image it writes runs under dockerd.

``make image-inputs`` (part of ``make install``) caches the debootstrap'd base rootfs tarball (Debian
mirror, under ``$LIFECYCLE_BASE_CACHE`` or /var/cache/lifecycle-base). This test uses no network: the
session fixtures (tests/support/dist.py) freeze the phases, write the tarball, import the cached base
into the private dockerd and run packaging/build_image.sh there. Missing inputs fail the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from lifecycle.descriptor import labels
from tests.conftest import BUSYBOX_MANIFEST, LAYOUT_REPO, REPO, require_tool
from tests.support.services import Dockerd

pytestmark = [pytest.mark.dockerd, pytest.mark.xdist_group("lifecycle-image")]

APP_IMAGE = "my-app:latest"
USER = 1000
PHASES = {"analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender", "launcher",
          "lifecycle"}


def _sh(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> float:
    start = time.monotonic()
    res = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return time.monotonic() - start


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


def test_image_creator_builds_the_sample_app_as_non_root(dockerd: Dockerd, lifecycle_image: str,
                                                         tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    timings: dict[str, float] = {}
    config = json.loads(dockerd.run("image", "inspect", lifecycle_image).stdout)[0]["Config"]
    assert {k: v for k, v in (config["Labels"] or {}).items() if k.startswith("io.buildpacks.")} == labels()

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
    script = ("set -e; ls /cnb/lifecycle; test -x /cnb/lifecycle/launcher; head -c 4 /cnb/lifecycle/lifecycle; "
              "echo; test -f /cnb/order.toml; test -x /cnb/buildpacks/samples_hello/0.0.1/bin/build; "
              'exec /cnb/lifecycle/creator "$@"')
    start = time.monotonic()
    res = dockerd.run("run", "--rm", "--network", "none", "--user", f"{USER}:{USER}",
                      "-e", "CNB_PLATFORM_API=0.15", "-e", f"CNB_USER_ID={USER}", "-e", f"CNB_GROUP_ID={USER}",
                      "-v", f"{oci}:/oci", "-v", f"{app}:/workspace", "-v", f"{layers}:/layers",
                      "--entrypoint", "/bin/sh", lifecycle_image, "-c", script, "creator",
                      "-oci", "-layers", "/layers", "-app", "/workspace", "-buildpacks", "/cnb/buildpacks",
                      "-order", "/cnb/order.toml", "-run-image", "busybox", "my-app", check=False, timeout=600)
    timings["creator run"] = time.monotonic() - start
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "ERROR" not in out and "Traceback" not in out, out
    assert set(res.stdout.split()) >= PHASES, out
    assert "\x7fELF" in res.stdout, out  # the frozen executable, not a script
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
