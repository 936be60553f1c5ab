"""Session-scoped services for tests: a local ``docker-registry`` and a private ``dockerd``.

Both are started from the Debian binaries (CI installs them; a missing tool fails the test, it
never skips), listen only on 127.0.0.1 or a unix socket under ``/tmp``, and are stopped by their
own PID at teardown.

- ``registry``: :class:`Registry` on ``127.0.0.1:<free port>`` with filesystem storage; its
  :meth:`Registry.start_another` starts more (e.g. with htpasswd basic auth, or read-only: a user
  who may log in and pull but not push), stopped together.
- ``dockerd``: :class:`Dockerd` with vfs storage, no iptables, no bridge, on a private socket.

The fixtures are session-scoped per process: under ``pytest -n`` each worker has its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest

START_TIMEOUT = 30.0

_COMPLETED = re.compile(r'^time="(?P<time>[0-9T:.-]+)Z?".*msg="response completed(?: with error)?".* '
                        r'http\.request\.method=(?P<method>[A-Z]+) .*http\.request\.uri="?(?P<uri>[^" ]+)"? .*'
                        r'http\.response\.duration=(?P<duration>\S+) http\.response\.status=(?P<status>\d{3})')
_DURATION_PART = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (run `make install`, which installs it)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM our own child, wait, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def bcrypt_line(user: str, password: str) -> str:
    """One htpasswd line with a bcrypt hash (the only scheme distribution accepts).

    Python 3.11's stdlib ``crypt`` (removed in 3.13) calls libxcrypt, which makes ``$2b$`` hashes;
    no ``bcrypt`` package or ``htpasswd`` binary is needed.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        pytest.fail("libcrypt cannot make bcrypt hashes; install apache2-utils and use htpasswd -B")
    return f"{user}:{hashed}"


class Timed(NamedTuple):
    """One request the registry answered, with when it started and ended (epoch seconds)."""

    start: float
    end: float
    method: str
    uri: str
    status: int


@dataclass
class Registry:
    """A running ``docker-registry``."""

    host: str
    port: int
    base_dir: Path
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    auth: tuple[str, str] | None = None
    _others: list[Registry] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    def ref(self, repository: str, tag: str = "latest") -> str:
        """``127.0.0.1:<port>/<repository>:<tag>``."""
        return f"{self.host}/{repository}:{tag}"

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, uri, status) of every request so far, from the access log."""
        out: list[tuple[str, str, int]] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _ACCESS.search(line)
            if match:
                out.append((match["method"], match["uri"], int(match["status"])))
        return out

    def mark(self) -> int:
        """How many requests were logged so far (pass to :meth:`requests_since`)."""
        return len(self.requests())

    def requests_since(self, mark: int) -> list[tuple[str, str, int]]:
        """Requests logged after :meth:`mark` returned ``mark``."""
        return self.requests()[mark:]

    def completed(self) -> list[Timed]:
        """Every request so far with when it started and ended (epoch seconds), from the
        registry's "response completed" log lines (nanosecond timestamps and durations)."""
        out: list[Timed] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _COMPLETED.search(line)
            if match:
                end = datetime.fromisoformat(match["time"][:26].rstrip("Z") + "+00:00").timestamp()
                took = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(match["duration"]))
                out.append(Timed(end - took, end, match["method"], match["uri"], int(match["status"])))
        return out

    def start_another(self, *, auth: tuple[str, str] | None = None, readonly: bool = False) -> Registry:
        """Start one more registry (optionally behind htpasswd ``auth``; ``readonly``: the storage's
        read-only maintenance mode, so every push is refused with 405); stopped with this one."""
        other = start_registry(Path(tempfile.mkdtemp(prefix="reg-", dir=self.base_dir)), auth=auth,
                               readonly=readonly)
        self._others.append(other)
        return other

    def stop(self) -> None:
        """Stop this registry and the ones started through it."""
        for other in self._others:
            other.stop()
        _stop(self.proc)


def start_registry(base_dir: Path, *, auth: tuple[str, str] | None = None, port: int | None = None,
                   readonly: bool = False) -> Registry:
    """Start ``docker-registry serve`` on ``port`` (default: a free one) of 127.0.0.1 and wait for ``/v2/``
    (``readonly``: the storage's read-only maintenance mode)."""
    exe = _tool("docker-registry")
    base_dir.mkdir(parents=True, exist_ok=True)
    data = base_dir / "data"
    data.mkdir(exist_ok=True)
    port = free_port() if port is None else port
    config = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {data}",
        "  delete:",
        "    enabled: true",
        *(["  maintenance:", "    readonly:", "      enabled: true"] if readonly else []),
        "  cache:",
        "    blobdescriptor: inmemory",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if auth is not None:
        htpasswd = base_dir / "htpasswd"
        htpasswd.write_text(bcrypt_line(*auth) + "\n")
        config += ["auth:", "  htpasswd:", "    realm: test-registry", f"    path: {htpasswd}"]
    config_path = base_dir / "config.yml"
    config_path.write_text("\n".join(config) + "\n")
    log_path = base_dir / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    reg = Registry(host=f"127.0.0.1:{port}", port=port, base_dir=base_dir, data_dir=data,
                   log_path=log_path, proc=proc, auth=auth)
    deadline = time.monotonic() + START_TIMEOUT
    want = 401 if auth else 200
    while True:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{reg.url}/v2/", timeout=2) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        if status == want:
            return reg
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"docker-registry did not answer on {reg.url}/v2/ (last status {status}):\n"
                        f"{log_path.read_text()[-2000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry on 127.0.0.1 (no auth), for the whole session."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@dataclass
class Dockerd:
    """A running private ``dockerd``."""

    host: str
    socket_path: Path
    base_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    docker: str
    config_dir: Path

    def env(self) -> dict[str, str]:
        """Environment for a docker client talking to this daemon."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.config_dir)
        env["DOCKER_BUILDKIT"] = "0"  # the classic builder: no buildx here, and dockerd is 20.10
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 300,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """``docker -H <host> <args>``; text output; raises on failure when ``check``."""
        proc = subprocess.run([self.docker, "-H", self.host, *args], env=self.env(), input=input,
                              capture_output=True, timeout=timeout)
        result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                             proc.stdout.decode(errors="replace"),
                                             proc.stderr.decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def stop(self) -> None:
        """Stop dockerd (it stops its own containerd) and remove its state."""
        _stop(self.proc, grace=20.0)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_dockerd() -> Dockerd:
    """Start ``dockerd`` (vfs, no iptables, no bridge) on a socket under /tmp; wait for ``info``."""
    exe = _tool("dockerd")
    docker = _tool("docker")
    if os.geteuid() != 0:
        pytest.fail("dockerd needs root (CI runs as root)")
    base = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))  # short: unix socket paths max ~108 chars
    sock = base / "docker.sock"
    config_dir = base / "client"
    config_dir.mkdir()
    (config_dir / "config.json").write_text("{}\n")
    daemon_json = base / "daemon.json"
    daemon_json.write_text(json.dumps({}) + "\n")
    log_path = base / "dockerd.log"
    args = [exe, "--config-file", str(daemon_json), "--storage-driver=vfs", "--iptables=false",
            "--ip6tables=false", "--bridge=none", "--host", f"unix://{sock}",
            "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "dockerd.pid")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    daemon = Dockerd(host=f"unix://{sock}", socket_path=sock, base_dir=base, log_path=log_path, proc=proc,
                     docker=docker, config_dir=config_dir)
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while True:
        if proc.poll() is not None:
            text = log_path.read_text(errors="replace")[-3000:]
            shutil.rmtree(base, ignore_errors=True)
            pytest.fail(f"dockerd exited with {proc.returncode}:\n{text}")
        if sock.exists():
            result = daemon.run("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
            if result.returncode == 0:
                return daemon
            last = result.stderr
        if time.monotonic() > deadline:
            text = log_path.read_text(errors="replace")[-3000:]
            daemon.stop()
            pytest.fail(f"dockerd did not come up on {daemon.host}: {last}\n{text}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A private dockerd for the whole session; ``.host`` is ``unix:///tmp/dk-.../docker.sock``."""
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def root_only_dockerd(dockerd: Dockerd) -> Iterator[Dockerd]:
    """The session's dockerd with its socket ``0600 root:root`` for one test (so a process that
    dropped to another user cannot connect), as it was afterwards."""
    if os.geteuid() != 0:
        pytest.fail("a root-only socket needs root")
    before = os.stat(dockerd.socket_path)
    os.chown(dockerd.socket_path, 0, 0)
    os.chmod(dockerd.socket_path, 0o600)
    try:
        yield dockerd
    finally:
        os.chown(dockerd.socket_path, before.st_uid, before.st_gid)
        os.chmod(dockerd.socket_path, before.st_mode & 0o7777)
