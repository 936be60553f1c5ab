"""Registry failures end to end, through a fault-injecting HTTP proxy in front of a real
docker-registry on 127.0.0.1: a 500 on every blob upload makes the creator fail with one ERROR
line and the export code, and nothing is tagged in the registry."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.support.sample import push_busybox, sample_build_args
from tests.support.services import Registry


class _FaultyProxy(http.server.ThreadingHTTPServer):
    """Forwards to the registry; answers 500 to every request that sends blob data (PUT/PATCH on an upload).
    Starting an upload (POST) passes: the analyzer's write-access check starts and cancels one."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if "/blobs/uploads/" in self.path and self.command in ("PUT", "PATCH"):
            self.server.refused.append(f"{self.command} {self.path}")
            payload = json.dumps({"errors": [{"code": "UNKNOWN", "message": "injected failure"}]}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value.replace(self.server.upstream, self.server.host))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


@pytest.fixture
def faulty(registry: Registry) -> Iterator[_FaultyProxy]:
    proxy = _FaultyProxy(registry.host)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_500_on_blob_upload_fails_cleanly_and_tags_nothing(run: Run, registry: Registry, faulty: _FaultyProxy,
                                                           tmp_path: Path) -> None:
    push_busybox(registry.host, "faults/busybox")
    res = run("creator", *sample_build_args(tmp_path), "-insecure-registry", faulty.host,
              "-run-image", f"{faulty.host}/faults/busybox", f"{faulty.host}/faults/app")
    assert res.returncode == 62, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, res.stdout
    assert "500" in errors[0] or "injected failure" in errors[0], errors[0]
    assert "Traceback" not in res.stdout
    assert faulty.refused, "the proxy saw no upload"
    conn = http.client.HTTPConnection(registry.host, timeout=10)
    conn.request("GET", "/v2/faults/app/manifests/latest",
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert conn.getresponse().status == 404  # nothing half-written was tagged
    conn.close()
    assert not (tmp_path / "layers" / "report.toml").exists()
