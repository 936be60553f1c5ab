"""The sample build most integration tests start from, and the run image they put in place for it.

One home for the workspace (a fresh ``layers`` dir, the hello app copied once, our buildpacks and
order) and for pushing or loading the busybox fixture, so a test names only what is particular to it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import BUSYBOX, REPO, require_tool

SAMPLE_APP = REPO / "samples" / "apps" / "hello"


def sample_build_args(work: Path) -> list[str]:
    """Empty ``<work>/layers``, ``<work>/app`` (the hello app, copied on first use) and the phase
    flags naming them with the sample buildpacks and order."""
    layers = work / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir(parents=True)
    app = work / "app"
    if not app.exists():
        shutil.copytree(SAMPLE_APP, app)
    return ["-layers", str(layers), "-app", str(app), "-buildpacks", str(REPO / "cnb" / "buildpacks"),
            "-order", str(REPO / "cnb" / "order.toml")]


def push_busybox(host: str, repo: str = "library/busybox", tag: str = "latest", *,
                 creds: str | None = None) -> str:
    """Copy the busybox fixture to ``<host>/<repo>:<tag>`` (plain HTTP, digests kept); returns ``<host>/<repo>``."""
    extra = ["--dest-creds", creds] if creds else []
    subprocess.run([require_tool("skopeo"), "copy", "--preserve-digests", "--dest-tls-verify=false", *extra,
                    f"oci:{BUSYBOX}", f"docker://{host}/{repo}:{tag}"], check=True, capture_output=True)
    return f"{host}/{repo}"


def load_busybox(daemon_host: str, name: str = "busybox:latest") -> None:
    """Load the busybox fixture into the daemon at ``daemon_host`` as ``name``."""
    subprocess.run([require_tool("skopeo"), "copy", "--dest-daemon-host", daemon_host, f"oci:{BUSYBOX}",
                    f"docker-daemon:{name}"], check=True, capture_output=True)
