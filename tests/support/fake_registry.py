"""A scriptable registry (and token service, and upload target) for hostile-server tests.

:class:`FakeServer` is a threaded HTTP/1.1 server on a loopback address (127.0.0.1 or 127.0.0.2),
over plain HTTP or over TLS with a certificate made by :func:`make_tls` (openssl, in the test). It
records every request it receives (:class:`Seen`: method, path, headers, body size) and answers
from a list of *rules*, the first one returning a :class:`Reply` winning; without a matching rule
it behaves as a small in-memory distribution registry (:class:`Storage`: manifests by tag and
digest, blobs, monolithic and chunked uploads, mounts), so the lifecycle's phases can run against
it end to end. Nothing here is shared with the code under test.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request a fake server received."""

    server: str
    method: str
    path: str
    headers: dict[str, str]
    body_size: int

    @property
    def auth(self) -> str | None:
        """Its ``Authorization`` header, if any."""
        return self.headers.get("authorization")


@dataclass
class Reply:
    """What to answer: status, headers, and a body (bytes, or chunks sent as they come).

    ``length`` is the ``Content-Length`` to declare (None: ``len(body)`` for bytes, chunked
    transfer for chunk iterators). ``hang`` never answers (until the server stops).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    length: int | None = None
    hang: bool = False


Rule = Callable[["Seen"], Reply | None]


@dataclass
class TLSFiles:
    """A test CA and a server certificate for 127.0.0.1, 127.0.0.2 and localhost."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> TLSFiles:
    """Generate the test CA and server certificate with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                          "server.pem"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
         "-subj", "/CN=lifecycle test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
         str(cert), "-days", "2", "-extfile", str(ext))
    return TLSFiles(ca=ca, cert=cert, key=key)


class Storage:
    """An in-memory registry's content: blobs by digest, manifests by (repository, tag or digest)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.lock = threading.Lock()

    def put_blob(self, data: bytes) -> str:
        """Store a blob; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def put_manifest(self, repository: str, tag: str, data: bytes, media: str) -> str:
        """Store a manifest under a tag and its digest; returns the digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[(repository, tag)] = (data, media)
        self.manifests[(repository, digest)] = (data, media)
        return digest

    def add_layout_image(self, repository: str, tag: str, layout: Path) -> str:
        """Copy the single image of an OCI layout (manifest, config, layers) in; returns its digest."""
        index = json.loads((layout / "index.json").read_text())
        desc = index["manifests"][0]

        def blob(digest: str) -> bytes:
            alg, hexpart = digest.split(":", 1)
            return (layout / "blobs" / alg / hexpart).read_bytes()

        data = blob(desc["digest"])
        manifest = json.loads(data)
        for item in [manifest["config"], *manifest["layers"]]:
            self.blobs[item["digest"]] = blob(item["digest"])
        return self.put_manifest(repository, tag, data, desc.get("mediaType") or manifest["mediaType"])


def image(storage: Storage, repository: str, tag: str, *, config: dict[str, object] | None = None,
          layers: tuple[bytes, ...] = (), config_digest: str | None = None) -> str:
    """A small OCI image (optionally with a forged config digest) stored under ``repository:tag``."""
    cfg = json.dumps(config or {"architecture": "amd64", "os": "linux", "config": {},
                                "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = storage.put_blob(cfg)
    layer_descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": storage.put_blob(data), "size": len(data)} for data in layers]
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest or digest, "size": len(cfg)},
                "layers": layer_descs}
    return storage.put_manifest(repository, tag, json.dumps(manifest).encode(),
                                "application/vnd.oci.image.manifest.v1+json")


class FakeServer(http.server.ThreadingHTTPServer):
    """A scriptable server on ``host`` (see the module doc)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", *, tls: TLSFiles | None = None,
                 storage: Storage | None = None, log: list[Seen] | None = None) -> None:
        super().__init__((host, 0), _Handler)
        self.tls = tls
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls.cert), str(tls.key))
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.storage = storage
        self.rules: list[Rule] = []
        self.log: list[Seen] = log if log is not None else []
        self.sent = 0  # body bytes sent, over all answers
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """``ip:port``."""
        return f"{self.server_address[0]}:{self.server_address[1]}"

    @property
    def url(self) -> str:
        """``http(s)://ip:port``."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def seen(self) -> list[Seen]:
        """The requests this server received."""
        return [s for s in list(self.log) if s.server == self.host]

    def start(self) -> FakeServer:
        """Serve in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (hanging answers are released)."""
        self.stopping.set()
        self.shutdown()
        self.server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up on endless answers are expected


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(60)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._body()
        seen = Seen(self.server.host, self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                    len(body))
        self.server.log.append(seen)
        reply = None
        for rule in list(self.server.rules):
            reply = rule(seen)
            if reply is not None:
                break
        if reply is None:
            reply = self._registry(seen, body)
        self._send(reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _send(self, reply: Reply) -> None:
        if reply.hang:
            self.server.stopping.wait(120)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        chunked = False
        if isinstance(reply.body, (bytes, bytearray)):
            self.send_header("Content-Length", str(reply.length if reply.length is not None else len(reply.body)))
        elif reply.length is not None:
            self.send_header("Content-Length", str(reply.length))
        else:
            chunked = True
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            parts: Iterable[bytes] = [bytes(reply.body)] if isinstance(reply.body, (bytes, bytearray)) else reply.body
            for part in parts:
                if self.server.stopping.is_set():
                    break
                if not part:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                self.wfile.flush()
                self.server.sent += len(part)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    # ---- the in-memory registry -------------------------------------------------------------
    def _registry(self, seen: Seen, body: bytes) -> Reply:
        store = self.server.storage
        url = urlsplit(seen.path)
        path, query = url.path, parse_qs(url.query)
        if store is None:
            return Reply(404, body=b"")
        if path == "/v2/":
            return Reply(200, {"Content-Type": "application/json"}, b"{}")
        name, sep, rest = path[len("/v2/"):].partition("/manifests/")
        if sep:
            if seen.method == "PUT":
                media = seen.headers.get("content-type", "")
                digest = store.put_manifest(name, rest, body, media)
                return Reply(201, {"Docker-Content-Digest": digest, "Location": path})
            if seen.method == "DELETE":
                return Reply(202)
            got = store.manifests.get((name, rest))
            if got is None:
                return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            data, media = got
            return Reply(200, {"Content-Type": media, "Docker-Content-Digest":
                               "sha256:" + hashlib.sha256(data).hexdigest()}, data)
        name, sep, rest = path[len("/v2/"):].partition("/blobs/uploads/")
        if sep:
            return self._upload(store, seen, name, rest, query, body)
        name, sep, digest = path[len("/v2/"):].partition("/blobs/")
        if sep:
            data = store.blobs.get(digest)
            if data is None:
                return _error(404, "BLOB_UNKNOWN", "blob unknown")
            return Reply(200, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}, data)
        return _error(404, "NAME_UNKNOWN", "unknown")

    def _upload(self, store: Storage, seen: Seen, name: str, session: str, query: dict[str, list[str]],
                body: bytes) -> Reply:
        if seen.method == "POST":
            mount = query.get("mount", [""])[0]
            if mount and mount in store.blobs:
                return Reply(201, {"Location": f"/v2/{name}/blobs/{mount}"})
            sid = uuid.uuid4().hex
            with store.lock:
                store.uploads[sid] = bytearray()
            return Reply(202, {"Location": f"/v2/{name}/blobs/uploads/{sid}", "Range": "0-0"})
        with store.lock:
            buf = store.uploads.get(session)
        if buf is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        buf += body
        if seen.method == "PATCH":
            return Reply(202, {"Location": f"/v2/{name}/blobs/uploads/{session}", "Range": f"0-{len(buf) - 1}"})
        if seen.method == "PUT":
            digest = query.get("digest", [""])[0]
            if "sha256:" + hashlib.sha256(bytes(buf)).hexdigest() != digest:
                return _error(400, "DIGEST_INVALID", "digest mismatch")
            store.blobs[digest] = bytes(buf)
            return Reply(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})
        return Reply(204)


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"Content-Type": "application/json"},
                 json.dumps({"errors": [{"code": code, "message": message}]}).encode())


def endless(chunk: bytes = b"x" * 65536) -> Iterator[bytes]:
    """An answer that never ends."""
    while True:
        yield chunk


def trickle(data: bytes, every: float) -> Iterator[bytes]:
    """``data`` one byte at a time, ``every`` seconds apart."""
    for i in range(len(data)):
        yield data[i:i + 1]
        time.sleep(every)


def free_loopback_port(host: str) -> int:
    """A port nothing listens on (for 'never answers' cases use a hanging Reply instead)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
