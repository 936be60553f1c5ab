"""Hostile registries: the real phases against scriptable servers on 127.0.0.1 and 127.0.0.2.

Each case runs a console script (under ``prlimit --as``) against :mod:`tests.support.fake_registry`
servers, over plain HTTP (``-insecure-registry``) or HTTPS with a test CA made by openssl, and
asserts what the servers received (no credentials where they do not belong, no request built from
a forged digest), the exit code (the phase's, never 1), one ``ERROR:`` line with no control
characters, and what was left on disk.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tarfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.conftest import BIN, BUSYBOX, base_env, require_tool
from tests.support.fake_registry import (
    FakeServer,
    Reply,
    Seen,
    Storage,
    TLSFiles,
    endless,
    free_loopback_port,
    image,
    make_tls,
    trickle,
)
from tests.support.sample import sample_build_args

USER, PASSWORD = "alice", "pa55-Secret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
# Address space for one phase: a registry-mode analyzer runs in about 100 MiB here; reading any
# of the answers below whole would need far more.
MEMORY_LIMIT = 256 * 1024 * 1024
CREATOR_MEMORY_LIMIT = 1024 * 1024 * 1024  # threads reserve stacks; still far below what the hostile answers need
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    require_tool("openssl")
    return make_tls(tmp_path_factory.mktemp("tls"))


@dataclass
class Rig:
    """Servers of one test, and how to run a phase against them."""

    tmp: Path
    tls_files: TLSFiles
    servers: list[FakeServer]
    log: list[Seen]

    def server(self, host: str = "127.0.0.1", *, tls: bool = False, storage: Storage | None = None) -> FakeServer:
        srv = FakeServer(host, tls=self.tls_files if tls else None, storage=storage, log=self.log).start()
        self.servers.append(srv)
        return srv

    def registry(self, host: str = "127.0.0.1", *, tls: bool = False) -> FakeServer:
        """A registry holding a tiny run image ``library/run:latest``."""
        storage = Storage()
        image(storage, "library/run", "latest")
        return self.server(host, tls=tls, storage=storage)

    def env(self, **extra: str) -> dict[str, str]:
        docker = self.tmp / "docker-empty"
        docker.mkdir(exist_ok=True)
        env = base_env(SSL_CERT_FILE=str(self.tls_files.ca), DOCKER_CONFIG=str(docker))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.pop(name, None)
            env.pop(name.lower(), None)
        env.update(extra)
        return env

    def run(self, program: str, *args: str, env: dict[str, str] | None = None, limit: int = MEMORY_LIMIT,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prlimit = require_tool("prlimit")
        return subprocess.run([prlimit, f"--as={limit}", "--", str(BIN / program), *args],
                              env=env or self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)

    def analyze(self, reg: FakeServer, *extra: str, env: dict[str, str] | None = None, run_image: str = "",
                timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = self.tmp / "out" / "analyzed.toml"
        insecure = [] if reg.tls else ["-insecure-registry", reg.host]
        res = self.run("analyzer", "-analyzed", str(out), *insecure, *extra, "-run-image",
                       run_image or f"{reg.host}/library/run", f"{reg.host}/app", env=env, timeout=timeout)
        return res, out


@pytest.fixture
def rig(tmp_path: Path, tls: TLSFiles) -> Iterator[Rig]:
    r = Rig(tmp_path, tls, [], [])
    try:
        yield r
    finally:
        for srv in r.servers:
            srv.stop()


def one_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ERROR line of a run that exited with ``code``; no traceback, no raw control chars."""
    assert res.returncode == code, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, res.stdout
    assert "Traceback" not in res.stdout and "unexpected failure" not in res.stdout, res.stdout
    assert not _CONTROL.search(res.stdout), res.stdout
    for secret in SECRETS:
        assert secret not in res.stdout
    return errors[0]


def challenge(realm: str, service: str = "fake") -> Callable[[Seen], Reply | None]:
    """401 with a Bearer challenge for every registry request without a Bearer token."""
    def rule(seen: Seen) -> Reply | None:
        if seen.path.startswith("/v2/") and not (seen.auth or "").startswith("Bearer "):
            return Reply(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="{service}"',
                               "Content-Type": "application/json"},
                         b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
        return None
    return rule


def token_service(token: str = "T0KEN") -> Callable[[Seen], Reply | None]:
    def rule(seen: Seen) -> Reply | None:
        if seen.path.startswith("/token"):
            return Reply(200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode())
        return None
    return rule


def auth_env(rig: Rig, reg: FakeServer, **extra: str) -> dict[str, str]:
    return rig.env(CNB_REGISTRY_AUTH=json.dumps({reg.host: BASIC}), **extra)


# ---- credentials stay in their registry ----------------------------------------------------------
@pytest.mark.parametrize("case", ["other-ip", "other-port", "plain-http-realm"])
def test_token_realm_elsewhere_gets_no_credentials(rig: Rig, case: str) -> None:
    reg = rig.registry(tls=True)
    if case == "other-ip":
        tokens = rig.server("127.0.0.2", tls=True)
    elif case == "other-port":
        tokens = rig.server("127.0.0.1", tls=True)
    else:
        tokens = rig.server("127.0.0.1")
    tokens.rules.append(token_service())
    reg.rules.append(challenge(f"{tokens.url}/token"))
    res, out = rig.analyze(reg, env=auth_env(rig, reg))
    line = one_error(res, 32)
    assert clean_host(tokens.url) in line and "token realm" in line
    if case == "plain-http-realm":
        assert "clear text" in line
    assert tokens.seen() == []  # not even an anonymous request
    assert not out.exists()


def test_token_realm_of_the_registry_itself_gets_credentials(rig: Rig) -> None:
    reg = rig.registry(tls=True)
    reg.rules.append(token_service())
    reg.rules.append(challenge(f"{reg.url}/token"))
    res, out = rig.analyze(reg, env=auth_env(rig, reg))
    assert res.returncode == 0, res.stdout
    token_requests = [s for s in reg.seen() if s.path.startswith("/token")]
    assert token_requests and all(s.auth == BASIC for s in token_requests)
    assert any(s.auth == "Bearer T0KEN" for s in reg.seen() if "/manifests/" in s.path)
    assert out.exists()


def test_plain_http_realm_allowed_for_an_insecure_registry_itself(rig: Rig) -> None:
    reg = rig.registry()
    reg.rules.append(token_service())
    reg.rules.append(challenge(f"{reg.url}/token"))
    res, _ = rig.analyze(reg, env=auth_env(rig, reg))
    assert res.returncode == 0, res.stdout


def test_identity_token_does_not_leave_either(rig: Rig) -> None:
    reg = rig.registry(tls=True)
    tokens = rig.server("127.0.0.2", tls=True)
    tokens.rules.append(token_service())
    reg.rules.append(challenge(f"{tokens.url}/token"))
    docker = rig.tmp / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"auths": {reg.host: {"identitytoken": PASSWORD}}}))
    env = rig.env()
    env["DOCKER_CONFIG"] = str(docker)
    res, _ = rig.analyze(reg, env=env)
    one_error(res, 32)
    assert tokens.seen() == []


def test_redirect_to_another_host_gets_no_credentials(rig: Rig) -> None:
    storage = Storage()
    image(storage, "library/run", "latest")
    reg = rig.server(storage=storage)
    other = rig.server("127.0.0.2", storage=storage)

    def redirect(seen: Seen) -> Reply | None:
        # Blob reads only: the analyzer's write-access check also starts (and cancels) an upload.
        if "/blobs/" in seen.path and "/uploads/" not in seen.path:
            return Reply(307, {"Location": f"{other.url}{seen.path}"})
        return None

    reg.rules.append(redirect)
    res, out = rig.analyze(reg, env=auth_env(rig, reg), run_image=f"{reg.host}/library/run")
    assert res.returncode == 0, res.stdout
    assert other.seen() and all(s.auth is None for s in other.seen())
    assert out.exists()


# ---- answers are bounded ------------------------------------------------------------------------
GIB = 1 << 30


def _manifest_reply(body: bytes | Iterator[bytes], **kw: object) -> Callable[[Seen], Reply | None]:
    def rule(seen: Seen) -> Reply | None:
        if "/manifests/" in seen.path and "library/run" in seen.path:
            # Every answer carries the headers (the access check's HEAD comes before the GET).
            extra = {k: v for k, v in kw.items() if k != "headers"}
            return Reply(200, {"Content-Type": MANIFEST, **kw.get("headers", {})},  # type: ignore[dict-item]
                         body, **extra)  # type: ignore[arg-type]
        return None
    return rule


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 1 MiB of gzip that inflates to 1 GiB of zeros: one fully flushed deflate piece for
    16 MiB, repeated (no trailer: nothing should read that far)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = z.compress(bytes(1 << 24)) + z.flush(zlib.Z_FULL_FLUSH)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + piece * 64


@pytest.mark.parametrize("case", ["declared-1GiB", "endless-chunked", "gzip-bomb", "endless-error-body"])
def test_large_answers_are_cut_off(rig: Rig, case: str, gzip_bomb: bytes) -> None:
    reg = rig.registry()
    if case == "declared-1GiB":
        reg.rules.append(_manifest_reply(endless(), length=GIB))
    elif case == "endless-chunked":
        reg.rules.append(_manifest_reply(endless()))
    elif case == "gzip-bomb":
        reg.rules.append(_manifest_reply(gzip_bomb, headers={"Content-Encoding": "gzip"}))
    else:
        reg.rules.append(lambda seen: Reply(500, {"Content-Type": "application/json"}, endless())
                         if "/manifests/" in seen.path else None)
    start = time.monotonic()
    res, out = rig.analyze(reg)
    line = one_error(res, 32)
    assert time.monotonic() - start < 60
    if case != "endless-error-body":
        assert "too large" in line
    assert reg.sent < 200 * (1 << 20)  # it stopped reading long before the end
    assert not out.exists()


def test_deeply_nested_json(rig: Rig) -> None:
    reg = rig.registry()
    reg.rules.append(_manifest_reply(b"[" * 200_000 + b"]" * 200_000))
    res, _ = rig.analyze(reg)
    assert "not valid JSON" in one_error(res, 32)


# ---- deadlines ----------------------------------------------------------------------------------
def test_trickling_registry_hits_the_deadline(rig: Rig) -> None:
    reg = rig.registry()
    body = json.dumps({"schemaVersion": 2, "padding": "x" * 100}).encode()
    reg.rules.append(_manifest_reply(trickle(body, 0.5), length=len(body)))
    env = rig.env(CNB_REGISTRY_TIMEOUT="2", CNB_REGISTRY_DEADLINE="3")
    start = time.monotonic()
    res, _ = rig.analyze(reg, env=env)
    took = time.monotonic() - start
    line = one_error(res, 32)
    assert reg.host in line and "CNB_REGISTRY_DEADLINE" in line
    assert took < 40, took  # generous for a loaded machine; unbounded would be 65 s or more


def test_silent_registry_hits_the_idle_timeout(rig: Rig) -> None:
    reg = rig.registry()
    reg.rules.append(lambda seen: Reply(hang=True) if "/manifests/" in seen.path else None)
    env = rig.env(CNB_REGISTRY_TIMEOUT="1", CNB_REGISTRY_DEADLINE="20")
    start = time.monotonic()
    res, _ = rig.analyze(reg, env=env)
    took = time.monotonic() - start
    line = one_error(res, 32)
    assert reg.host in line and ("CNB_REGISTRY_TIMEOUT" in line or "CNB_REGISTRY_DEADLINE" in line)
    assert took < 40, took  # generous for a loaded machine; the server would hang for 120 s


@pytest.mark.parametrize("value", ["0", "-5"])
def test_bad_limits_are_input_errors(rig: Rig, value: str) -> None:
    reg = rig.registry()
    res, _ = rig.analyze(reg, env=rig.env(CNB_REGISTRY_TIMEOUT=value))
    assert "CNB_REGISTRY_TIMEOUT" in one_error(res, 3)
    assert reg.seen() == []


# ---- raw text -----------------------------------------------------------------------------------
def test_server_text_is_escaped(rig: Rig) -> None:
    reg = rig.registry()
    message = "denied\n*** Images (sha256:forged):\n      evil/image\x1b[2J\x1b]0;pwned\x07 \u202egnp.exe"
    reg.rules.append(lambda seen: Reply(403, {"Content-Type": "application/json"},
                                        json.dumps({"errors": [{"code": "DENIED", "message": message}]}).encode())
                     if "/manifests/" in seen.path else None)
    res, _ = rig.analyze(reg)
    line = one_error(res, 32)
    assert "*** Images" not in res.stdout.replace(line, "")
    assert "\\x0a" in line and "\\x1b" in line


def test_userinfo_in_a_location_is_not_shown(rig: Rig) -> None:
    reg = rig.registry()
    reg.rules.append(lambda seen: Reply(302, {"Location": "http://admin:hunter2@127.0.0.1:1/elsewhere?tok=s3"})
                     if "/manifests/" in seen.path else None)
    res, _ = rig.analyze(reg)
    line = one_error(res, 32)
    assert "hunter2" not in res.stdout and "tok=s3" not in res.stdout, line


# ---- digests ------------------------------------------------------------------------------------
def test_forged_config_digest_is_never_requested(rig: Rig) -> None:
    storage = Storage()
    image(storage, "library/run", "latest", config_digest="sha256:../../../../etc/passwd")
    reg = rig.server(storage=storage)
    res, _ = rig.analyze(reg, env=auth_env(rig, reg))
    assert "invalid" in one_error(res, 32)
    paths = [s.path for s in reg.seen()]
    assert all("/etc/" not in p and "passwd" not in p for p in paths), paths


def test_index_child_digest_with_dot_dot_is_refused(rig: Rig) -> None:
    storage = Storage()
    image(storage, "library/other", "latest")
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": "sha256:/../../other/manifests/latest", "size": 10,
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    storage.put_manifest("library/run", "latest", json.dumps(index).encode(), INDEX)
    reg = rig.server(storage=storage)
    res, out = rig.analyze(reg)
    one_error(res, 32)
    assert not any("other" in s.path for s in reg.seen())
    assert not out.exists()


# ---- odd protocol -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["loop", "malformed-location", "no-location", "downgrade", "non-ascii-token",
                                  "bad-token-json"])
def test_odd_answers_end_in_the_phase_code(rig: Rig, case: str) -> None:
    reg = rig.registry(tls=case == "downgrade")
    if case == "loop":
        reg.rules.append(lambda seen: Reply(302, {"Location": seen.path}) if "/manifests/" in seen.path else None)
    elif case == "malformed-location":
        reg.rules.append(lambda seen: Reply(302, {"Location": "http://[::1"}) if "/manifests/" in seen.path
                         else None)
    elif case == "no-location":
        reg.rules.append(lambda seen: Reply(302) if "/manifests/" in seen.path else None)
    elif case == "downgrade":
        reg.rules.append(lambda seen: Reply(302, {"Location": f"http://{reg.host}{seen.path}"})
                         if "/manifests/" in seen.path else None)
    elif case == "non-ascii-token":
        reg.rules.append(lambda seen: Reply(200, {"Content-Type": "application/json"},
                                            json.dumps({"token": "t\u00f6k\u00e9n"}).encode())
                         if seen.path.startswith("/token") else None)
        reg.rules.append(challenge(f"{reg.url}/token"))
    else:
        reg.rules.append(lambda seen: Reply(200, {"Content-Type": "application/json"}, b"{not json")
                         if seen.path.startswith("/token") else None)
        reg.rules.append(challenge(f"{reg.url}/token"))
    res, out = rig.analyze(reg, env=auth_env(rig, reg))
    one_error(res, 32)
    assert len(reg.seen()) < 20
    assert not out.exists()


def clean_host(url: str) -> str:
    return url.split("://", 1)[1]


# ---- the exporter and the restorer (creator) ----------------------------------------------------
def busybox_storage() -> Storage:
    storage = Storage()
    storage.add_layout_image("library/busybox", "latest", BUSYBOX)
    return storage


def creator(rig: Rig, reg: FakeServer, *, env: dict[str, str] | None = None,
            cache: bool = False) -> subprocess.CompletedProcess[str]:
    insecure = [] if reg.tls else ["-insecure-registry", reg.host]
    extra = ["-cache-image", f"{reg.host}/cache:latest"] if cache else []
    return rig.run("creator", *sample_build_args(rig.tmp), *insecure, *extra, "-run-image",
                   f"{reg.host}/library/busybox", f"{reg.host}/app", env=env, limit=CREATOR_MEMORY_LIMIT, timeout=300)


def basic_only(seen: Seen) -> Reply | None:
    """Every registry request needs the Basic credentials."""
    if seen.path.startswith("/v2/") and seen.auth != BASIC:
        return Reply(401, {"WWW-Authenticate": 'Basic realm="fake"'}, b"")
    return None


def upload_elsewhere(storage: Storage, target: Callable[[], str]) -> Callable[[Seen], Reply | None]:
    """Answer upload starts with a session on another server (``target()`` is its base URL)."""
    def rule(seen: Seen) -> Reply | None:
        path, _, query = seen.path.partition("?")
        mount = parse_qs(query).get("mount", [""])[0]
        if seen.method == "POST" and path.endswith("/blobs/uploads/") and mount not in storage.blobs \
                and seen.auth == BASIC:
            sid = uuid.uuid4().hex
            storage.uploads[sid] = bytearray()
            name = seen.path[len("/v2/"):].split("/blobs/uploads/")[0]
            return Reply(202, {"Location": f"{target()}/v2/{name}/blobs/uploads/{sid}"})
        return None
    return rule


def test_upload_location_on_another_host_gets_no_credentials(rig: Rig) -> None:
    storage = busybox_storage()
    reg = rig.server(tls=True, storage=storage)
    target = rig.server("127.0.0.2", tls=True, storage=storage)
    reg.rules += [basic_only, upload_elsewhere(storage, lambda: target.url)]
    res = creator(rig, reg, env=auth_env(rig, reg))
    assert res.returncode == 0, res.stdout
    puts = [s for s in target.seen() if s.method == "PUT"]
    assert puts, "no upload reached the other host"
    assert all(s.auth is None for s in target.seen())
    assert all(s.auth == BASIC for s in reg.seen() if s.method in ("PUT", "POST"))
    assert ("app", "latest") in storage.manifests


@pytest.mark.parametrize("case", ["downgrade", "307-on-put"])
def test_hostile_upload_answers_fail_the_export(rig: Rig, case: str) -> None:
    storage = busybox_storage()
    reg = rig.server(tls=True, storage=storage)
    plain = rig.server("127.0.0.2", storage=storage)
    if case == "downgrade":
        reg.rules += [basic_only, upload_elsewhere(storage, lambda: plain.url)]
    else:
        reg.rules += [basic_only, lambda seen: Reply(307, {"Location": f"{plain.url}{seen.path}"})
                      if seen.method == "PUT" and "/blobs/uploads/" in seen.path else None]
    res = creator(rig, reg, env=auth_env(rig, reg))
    # A downgrading upload Location is refused by the first upload start: the analyzer's write-access
    # check (exit 32), before any build work; a 307 on a PUT is met by the exporter (exit 62).
    line = one_error(res, 32 if case == "downgrade" else 62)
    assert plain.seen() == []
    assert ("app", "latest") not in storage.manifests
    assert ("refusing to leave https" in line) if case == "downgrade" else ("not redirected" in line)
    assert not (rig.tmp / "layers" / "report.toml").exists()


def _tar_bomb(counter: list[int]) -> Iterator[bytes]:
    """A gzip'd tar whose first entry claims 100 GiB, then zeros without end."""
    header = tarfile.TarInfo("layers/samples_hello/cache-data/huge")
    header.size = 100 * GIB
    z = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = z.compress(header.tobuf(format=tarfile.GNU_FORMAT))
    block = bytes(1 << 20)
    yield first
    counter[0] += len(first)
    while True:
        out = z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
        counter[0] += len(out)
        yield out


@pytest.mark.parametrize("declared", [False, True])
def test_cache_layer_is_not_read_past_its_descriptor(rig: Rig, declared: bool) -> None:
    storage = busybox_storage()
    reg = rig.server(storage=storage)
    first = creator(rig, reg, cache=True)
    assert first.returncode == 0, first.stdout
    manifest = json.loads(storage.manifests[("cache", "latest")][0])
    layer = manifest["layers"][0]
    sent = [0]
    reg.rules.append(lambda seen: Reply(200, {"Content-Type": "application/octet-stream"}, _tar_bomb(sent),
                                        length=100 * GIB if declared else None)
                     if seen.method == "GET" and seen.path.endswith(f"/blobs/{layer['digest']}") else None)
    res = creator(rig, reg, cache=True)
    assert res.returncode == 0, res.stdout
    assert "Traceback" not in res.stdout
    assert any(line.startswith("Warning: Skipping restore for layer samples/hello:cache-data")
               for line in res.stdout.splitlines()), res.stdout
    assert "samples/hello: building cached layer" in res.stdout
    assert sent[0] < 8 * (1 << 20)  # read stopped at the descriptor's size, not at the end of the stream
    biggest = max((p.stat().st_size for p in (rig.tmp / "layers").rglob("*") if p.is_file()), default=0)
    assert biggest < (1 << 20)
    assert not list((rig.tmp / "layers").rglob(".restore-*"))


# ---- secrets never reach the output (issue 9, point 5) -------------------------------------------
SECRET = "Zx9-sEcReT-42"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def denying(seen: Seen) -> Reply | None:
    """401 Basic without credentials, 403 with any."""
    if not seen.path.startswith("/v2/"):
        return None
    if seen.auth is None:
        return Reply(401, {"WWW-Authenticate": 'Basic realm="fake"'}, b"")
    return Reply(403, {"Content-Type": "application/json"}, b'{"errors":[{"code":"DENIED","message":"no"}]}')


def _no_secret(res: subprocess.CompletedProcess[str], codes: tuple[int, ...]) -> None:
    assert res.returncode in codes, res.stdout
    assert SECRET not in res.stdout and _b64(SECRET) not in res.stdout, res.stdout
    assert "Traceback" not in res.stdout and "unexpected failure" not in res.stdout, res.stdout
    assert len([line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]) == 1, res.stdout
    assert not _CONTROL.search(res.stdout), res.stdout


@pytest.mark.parametrize(("make", "code"), [
    (lambda host: json.dumps({host: f"Bearer {SECRET}\nX-Injected: 1"}), 3),
    (lambda host: json.dumps({host: f"Bearer {SECRET}\x00"}), 3),
    (lambda host: json.dumps({host: f"Bearer {SECRET}\u00e9"}), 3),
    (lambda host: json.dumps({host: "Bearer " + "S" * 100_000 + SECRET}), 3),
    (lambda host: json.dumps({host: "Basic " + _b64(f"alice:{SECRET}\n\x00\u00e9")}), 32),
    (lambda host: json.dumps({host: f"Bearer {SECRET}"}), 32),
    (lambda host: json.dumps({f"Basic {SECRET}": host}), 32),
    (lambda host: '{"' + host + '": "Bearer ' + SECRET, 3),
    (lambda host: "[" * 100_000 + SECRET, 3),
    (lambda host: json.dumps({host: [SECRET]}), 3),
], ids=["newline", "nul", "non-ascii", "very-long", "basic-with-controls", "bearer", "swapped", "truncated-json",
        "deep-json", "wrong-type"])
def test_cnb_registry_auth_never_shown(rig: Rig, make: Callable[[str], str], code: int) -> None:
    reg = rig.registry()
    reg.rules.append(denying)
    res, out = rig.analyze(reg, "-log-level", "debug", env=rig.env(CNB_REGISTRY_AUTH=make(reg.host)))
    _no_secret(res, (code,))
    assert not out.exists()
    if code == 3:
        assert reg.seen() == []


@pytest.mark.parametrize("case", ["auth-with-controls", "password", "identity-token", "malformed", "deep",
                                  "huge", "fifo", "bad-base64"])
def test_docker_config_secrets_never_shown(rig: Rig, case: str) -> None:
    reg = rig.registry()
    reg.rules.append(denying)
    docker = rig.tmp / "docker"
    docker.mkdir()
    config = docker / "config.json"
    if case == "auth-with-controls":
        config.write_text(json.dumps({"auths": {reg.host: {"auth": _b64(f"alice:{SECRET}\n\x1b[2J")}}}))
    elif case == "password":
        config.write_text(json.dumps({"auths": {reg.host: {"username": "alice", "password": SECRET + "\x00"}}}))
    elif case == "identity-token":
        reg.rules.insert(0, challenge(f"{reg.url}/token"))
        config.write_text(json.dumps({"auths": {reg.host: {"identitytoken": SECRET + "\n"}}}))
    elif case == "malformed":
        config.write_text('{"auths": {"' + reg.host + '": {"auth": "' + _b64(f"alice:{SECRET}"))
    elif case == "deep":
        config.write_text("[" * 100_000 + SECRET)
    elif case == "huge":
        config.write_text(json.dumps({"auths": {reg.host: {"auth": _b64(f"alice:{SECRET}")}},
                                      "padding": "x" * (5 << 20)}))
    elif case == "fifo":
        os.mkfifo(config)
    else:
        config.write_text(json.dumps({"auths": {reg.host: {"auth": SECRET + "!!"}}}))
    env = rig.env()
    env["DOCKER_CONFIG"] = str(docker)
    start = time.monotonic()
    res, out = rig.analyze(reg, "-log-level", "debug", env=env)
    _no_secret(res, (32,))
    assert time.monotonic() - start < 60
    assert not out.exists()


# ---- proxies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("no_proxy", ["", "127.0.0.3"])
def test_http_proxy_from_the_environment(rig: Rig, no_proxy: str) -> None:
    proxy = rig.registry()  # answers absolute-form requests from its storage, as a forwarding proxy would
    registry = f"127.0.0.3:{free_loopback_port('127.0.0.3')}"
    env = rig.env(HTTP_PROXY=proxy.url, NO_PROXY=no_proxy)
    out = rig.tmp / "out" / "analyzed.toml"
    res = rig.run("analyzer", "-analyzed", str(out), "-insecure-registry", registry, "-run-image",
                  f"{registry}/library/run", f"{registry}/app", env=env)
    if no_proxy:
        assert "cannot connect to the registry" in one_error(res, 32)
        assert proxy.seen() == []
    else:
        assert res.returncode == 0, res.stdout
        assert proxy.seen() and all(s.path.startswith(f"http://{registry}/v2/") for s in proxy.seen())
