"""A hostile Docker daemon: the real analyzer (``-daemon``) against a fake Engine API on a Unix
socket whose ``image inspect`` answers have the wrong shape, or whose errors carry control
characters. Each ends in one clean ``ERROR:`` line and the analyzer's exit code, never 1."""

from __future__ import annotations

import http.server
import json
import re
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, base_env

ID = "sha256:" + "a" * 64
GOOD: dict[str, Any] = {"Id": ID, "RepoTags": ["busybox:latest"], "Architecture": "amd64", "Os": "linux",
                        "Config": {"Env": ["PATH=/bin"]},
                        "RootFS": {"Type": "layers", "Layers": ["sha256:" + "b" * 64]}}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class _Daemon(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.inspect: tuple[int, bytes] = (200, json.dumps(GOOD).encode())
        self.paths: list[str] = []
        super().__init__(str(path), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Daemon
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path.endswith("/version"):
            version = {"ApiVersion": "1.43", "MinAPIVersion": "1.12", "Version": "24.0.0"}
            status, body = 200, json.dumps(version).encode()
        elif "/images/" in self.path and self.path.endswith("/json"):
            status, body = self.server.inspect
        else:
            status, body = 404, b'{"message": "not found"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[_Daemon]:
    server = _Daemon(tmp_path / "docker.sock")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _analyze(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = base_env(DOCKER_HOST=f"unix://{tmp_path / 'docker.sock'}")
    return subprocess.run([str(BIN / "analyzer"), "-daemon", "-analyzed", str(tmp_path / "out" / "analyzed.toml"),
                           "-run-image", "busybox", "my-app"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


def test_a_well_formed_answer_is_read(daemon: _Daemon, tmp_path: Path) -> None:
    res = _analyze(tmp_path)
    assert res.returncode == 0, res.stdout
    assert ID in (tmp_path / "out" / "analyzed.toml").read_text()


@pytest.mark.parametrize(("answer", "what"), [
    ([], "not a JSON object"),
    ({**GOOD, "Id": 5}, "Id is not a string"),
    ({**GOOD, "Id": "sha256:../../x"}, "Id is not a sha256 digest"),
    ({**GOOD, "Config": []}, "Config is not an object"),
    ({**GOOD, "RootFS": "layers"}, "RootFS is not an object"),
    ({**GOOD, "RootFS": {"Layers": ["../../etc/passwd"]}}, "RootFS.Layers is not a list of digests"),
    ({**GOOD, "RepoTags": "busybox"}, "RepoTags is not a list of strings"),
    ({**GOOD, "Config": {"Env": "PATH=/bin"}}, "config is not valid"),
    ({**GOOD, "Config": {"Labels": {"a": {"deep": 1}}}}, "config is not valid"),
])
def test_wrong_shapes_are_one_error(daemon: _Daemon, tmp_path: Path, answer: object, what: str) -> None:
    daemon.inspect = (200, json.dumps(answer).encode())
    res = _analyze(tmp_path)
    assert res.returncode == 32, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "unexpected shape" in errors[0] and what in errors[0], res.stdout
    assert "Traceback" not in res.stdout and "unexpected failure" not in res.stdout
    assert not (tmp_path / "out").exists()


def test_daemon_error_text_is_escaped(daemon: _Daemon, tmp_path: Path) -> None:
    message = "boom\n*** Images (sha256:forged):\x1b[31m red"
    daemon.inspect = (500, json.dumps({"message": message}).encode())
    res = _analyze(tmp_path)
    assert res.returncode == 32, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, res.stdout
    assert "*** Images" not in res.stdout.replace(errors[0], "")
    assert not _CONTROL.search(res.stdout), res.stdout
