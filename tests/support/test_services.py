"""The test services start, serve real clients, and stop."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, require_tool
from tests.support.services import Dockerd, Registry, start_dockerd

pytestmark = [pytest.mark.registry]


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=300)


def test_registry_serves_skopeo_push_and_pull(registry: Registry, tmp_path: Path) -> None:
    push = _skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{BUSYBOX}",
                   f"docker://{registry.ref('svc/busybox')}")
    assert push.returncode == 0, push.stderr
    with urllib.request.urlopen(f"{registry.url}/v2/svc/busybox/tags/list") as resp:
        assert json.load(resp) == {"name": "svc/busybox", "tags": ["latest"]}
    pull = _skopeo("copy", "--src-tls-verify=false", f"docker://{registry.ref('svc/busybox')}",
                   f"oci:{tmp_path / 'back'}:latest")
    assert pull.returncode == 0, pull.stderr
    methods = {m for m, _, _ in registry.requests()}
    assert {"PUT", "GET"} <= methods


def test_registry_with_basic_auth(registry: Registry) -> None:
    secured = registry.start_another(auth=("alice", "s3cret"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{secured.url}/v2/")
    assert err.value.code == 401
    denied = _skopeo("copy", "--dest-tls-verify=false", f"oci:{BUSYBOX}",
                     f"docker://{secured.ref('svc/busybox')}")
    assert denied.returncode != 0
    ok = _skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", f"oci:{BUSYBOX}",
                 f"docker://{secured.ref('svc/busybox')}")
    assert ok.returncode == 0, ok.stderr
    secured.stop()
    assert secured.proc.poll() is not None


@pytest.mark.dockerd
def test_dockerd_loads_and_runs_busybox(dockerd: Dockerd) -> None:
    copy = _skopeo("copy", "--dest-daemon-host", dockerd.host, f"oci:{BUSYBOX}",
                   "docker-daemon:busybox:latest")
    assert copy.returncode == 0, copy.stderr
    out = dockerd.run("run", "--rm", "--network", "none", "busybox:latest", "echo", "hi")
    assert out.stdout == "hi\n"


@pytest.mark.dockerd
def test_dockerd_stops_and_cleans_up() -> None:
    daemon = start_dockerd()
    assert daemon.socket_path.exists()
    daemon.stop()
    assert daemon.proc.poll() is not None
    assert not daemon.base_dir.exists()
