"""``-daemon`` builds as root with ``-uid 1000 -gid 1000`` against a daemon whose socket only root may
open (``0600 root:root``), as pack mounts it: the analyzer and exporter connect before they drop
(spec/trust-model.md), then run as the CNB user, so what they write belongs to that user."""

from __future__ import annotations

import os
import subprocess
import tomllib

from tests.conftest import BUSYBOX, base_env, require_tool, run_program
from tests.e2e.conftest import BUILDPACKS, ORDER
from tests.support.services import Dockerd
from tests.trust.conftest import GID, UID, UserWorkspace

IMAGE = "dropped-app:latest"


def _phase(ws: UserWorkspace, dockerd: Dockerd, program: str, *args: str) -> str:
    res = run_program(program, "-uid", str(UID), "-gid", str(GID), "-layers", str(ws.layers), *args,
                      env=base_env(DOCKER_HOST=dockerd.host))
    assert res.returncode == 0, f"{program} exited {res.returncode}:\n{res.stdout}"
    assert "Traceback" not in res.stdout, res.stdout
    return res.stdout


def _build(ws: UserWorkspace, dockerd: Dockerd) -> None:
    app = ("-app", str(ws.app))
    bps = ("-buildpacks", str(BUILDPACKS))
    _phase(ws, dockerd, "analyzer", "-daemon", "-run-image", "busybox:latest", IMAGE)
    _phase(ws, dockerd, "detector", *app, *bps, "-order", str(ORDER))
    _phase(ws, dockerd, "restorer", "-cache-dir", str(ws.cache))
    _phase(ws, dockerd, "builder", *app, *bps)
    _phase(ws, dockerd, "exporter", "-daemon", *app, "-cache-dir", str(ws.cache), IMAGE)


def _owner(path: os.PathLike[str] | str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def test_daemon_build_through_a_root_only_socket(root_only_dockerd: Dockerd, user_ws: UserWorkspace) -> None:
    dockerd = root_only_dockerd
    subprocess.run([require_tool("skopeo"), "copy", "-q", "--dest-daemon-host", dockerd.host, f"oci:{BUSYBOX}",
                    "docker-daemon:busybox:latest"], check=True, capture_output=True)
    dockerd.run("rmi", IMAGE, check=False)
    # the CNB user itself cannot open the socket
    probe = subprocess.run(["sh", "-c", f"test -w {dockerd.socket_path} && echo writable "
                            "|| echo denied"], capture_output=True, text=True, user=UID, group=GID, extra_groups=[])
    assert probe.stdout.strip() == "denied", probe.stdout + probe.stderr

    _build(ws=user_ws, dockerd=dockerd)
    res = dockerd.run("run", "--rm", "--network", "none", IMAGE)
    assert res.stdout.splitlines() == ["Hello from samples/hello", "Hello, world!"]
    image_id = dockerd.run("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    # what the dropped phases wrote is the CNB user's
    for name in ("analyzed.toml", "group.toml", "report.toml"):
        assert _owner(user_ws.layers / name) == (UID, GID), name
    report = tomllib.loads((user_ws.layers / "report.toml").read_text())
    assert report["image"]["image-id"] == image_id

    # the next analyze finds the previous image in the daemon, again as the CNB user
    (user_ws.layers / "analyzed.toml").unlink()
    _phase(user_ws, dockerd, "analyzer", "-daemon", "-run-image", "busybox:latest", IMAGE)
    analyzed = tomllib.loads((user_ws.layers / "analyzed.toml").read_text())
    assert analyzed["image"]["reference"] == image_id
    assert analyzed["metadata"]["app"], analyzed  # the previous image's layers metadata was read
    assert _owner(user_ws.layers / "analyzed.toml") == (UID, GID)
