"""lifecycle.priv.daemon: connections to a root-only daemon socket, opened as root, keep serving the
daemon client after the process dropped to uid 1000 (a real dockerd; its socket made 0600 root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lifecycle.priv.daemon import DEFAULT_SOCKET, connect_daemon, socket_path
from tests.conftest import BUSYBOX, REPO, require_tool
from tests.support.services import Dockerd

UID = GID = 1000


def test_socket_path_of_docker_host_values() -> None:
    assert socket_path("") == DEFAULT_SOCKET
    assert socket_path("unix:///tmp/dk/docker.sock") == "/tmp/dk/docker.sock"
    assert socket_path("tcp://127.0.0.1:2375") is None
    assert connect_daemon("tcp://127.0.0.1:2375") is None


def test_no_daemon_means_no_connections(tmp_path: Path) -> None:
    assert connect_daemon(f"unix://{tmp_path}/missing.sock") is None


# Runs as root: connect, drop to 1000:1000, then use the daemon through the store only.
_SCRIPT = r"""
import json, os, socket, sys
from pathlib import Path
from lifecycle.priv.preload import preload
from lifecycle.image.daemon import DaemonStore
from lifecycle.image.daemon_layers import save_layers
from lifecycle.priv import build_user, connect_daemon, drop_to

host, work = sys.argv[1], Path(sys.argv[2])
sockets = connect_daemon(host, count=2)
assert sockets is not None and sockets.left() == 2 and sockets.api_version
import threading
assert threading.active_count() == 1  # no thread before the drop
preload(registry=False, daemon=True)  # this Python may live under root's home, as the phases' preload assumes
drop_to(build_user(1000, 1000))
out = {"ids": [os.getuid(), os.getgid()]}
try:
    socket.socket(socket.AF_UNIX).connect(sockets.path)
    out["own_connect"] = "connected"
except PermissionError:
    out["own_connect"] = "permission denied"
store = DaemonStore(host, sockets)
image = store.find("busybox:latest")
out["found"] = image is not None and image.image_id
out["missing"] = store.find("no-such-image:latest") is None
layers = save_layers(store, "busybox:latest", set(image.diff_ids), work / "layers")
out["saved"] = sorted(layers)
# docker save abandoned after its first KiB: that connection is never used again
stream = store.api().get_image("busybox:latest", chunk_size=1024)
next(stream)
stream.close()
del stream
out["after_save"] = [store.exists("busybox:latest") for _ in range(3)]
# a second client on the same connections (the creator's export step after its analyze step)
other = DaemonStore(host, sockets)
out["second_client"] = other.exists("busybox:latest")
other.close()
out["after_close"] = store.exists("busybox:latest")
out["left"] = sockets.left()
out["threads"] = sorted(t.name for t in threading.enumerate())
(work / "written-after-drop").write_text("x")
print(json.dumps(out))
"""


def test_connections_opened_as_root_serve_the_store_after_the_drop(root_only_dockerd: Dockerd) -> None:
    dockerd = root_only_dockerd
    subprocess.run([require_tool("skopeo"), "copy", "-q", "--dest-daemon-host", dockerd.host, f"oci:{BUSYBOX}",
                    "docker-daemon:busybox:latest"], check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="lifecycle-daemon-"))  # pytest's tmp_path is under a 0700 dir
    try:
        os.chown(work, UID, GID)
        res = subprocess.run([sys.executable, "-c", _SCRIPT, dockerd.host, str(work)], capture_output=True,
                             text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
        st = os.stat(work / "written-after-drop") if res.returncode == 0 else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["ids"] == [UID, GID]
    assert out["own_connect"] == "permission denied"  # the socket really is out of the user's reach
    assert out["found"].startswith("sha256:")
    assert out["missing"] is True
    assert len(out["saved"]) == 1
    assert out["after_save"] == [True, True, True]
    assert out["second_client"] is True and out["after_close"] is True
    assert out["threads"] == ["MainThread", "daemon-keepalive"]
    assert out["left"] == 1  # the abandoned docker save gave up one connection; the other is idle again
    assert st is not None and (st.st_uid, st.st_gid) == (UID, GID)
