"""Two builds sharing one cache image commit "at the same time", under a forced interleaving.

Build B (whose cached layer is unchanged, so it reuses the cache's blob) is paused with SIGSTOP at
a chosen point of its export, found by its own output lines (no hook in the lifecycle):

- ``after-reuse``: B printed ``Reusing cache layer 'cc/bp:cached'`` (it read the cache image and
  staged the old blob) and is still compressing its next cache layer, so it has not committed;
- ``before-reuse``: B printed ``Adding layer 'cc/bp:big'`` (its exporter opened the cache image
  and read its index and manifest) and is still exporting the app image, so it has not reached the
  cache.

Build A (whose cached layer changed) then runs to the end: it commits and removes the blobs of
the cache image both read, including the one B reuses. B resumes and commits. Every round, the
cache image must pass ``skopeo copy`` into a fresh directory and name no missing blob, and B's
reuse must still hold (its blob put back) or have been redone (``Skipping reuse`` then ``Adding``).
The same runs against a cache image on the test docker-registry.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, LAYOUT_REPO, base_env, require_tool
from tests.phases.buildpacks import write_buildpack, write_order
from tests.support.services import Registry

ROUNDS = 3
# cached: from the app's seed file (B keeps it, A changes it); zz-big: always new, so B is busy for a
# while after reusing 'cached'; big: a launch layer, so B is busy exporting the app image first.
BUILD = """mkdir -p "$1/cached"; cat seed > "$1/cached/seed"
printf '[types]\\ncache = true\\n' > "$1/cached.toml"
mkdir -p "$1/zz-big"; head -c 20000000 /dev/urandom > "$1/zz-big/noise"
printf '[types]\\ncache = true\\n' > "$1/zz-big.toml"
mkdir -p "$1/big" "$1/zz-launch"; head -c 20000000 /dev/urandom > "$1/big/noise"
head -c 20000000 /dev/urandom > "$1/zz-launch/noise"
printf '[types]\\nlaunch = true\\n' > "$1/big.toml"; printf '[types]\\nlaunch = true\\n' > "$1/zz-launch.toml"
"""
STOP_AT = {"after-reuse": "Reusing cache layer 'cc/bp:cached'", "before-reuse": "Adding layer 'cc/bp:big'"}


@dataclass
class Shared:
    """One layout root (busybox, the apps' images, maybe the cache image) and two builds' dirs."""

    base: Path
    cache_ref: str
    extra: tuple[str, ...] = ()

    @property
    def oci(self) -> Path:
        return self.base / "oci"

    def args(self, who: str) -> list[str]:
        return [str(BIN / "creator"), "-oci", "-oci-dir", str(self.oci), "-layers", str(self.base / who / "layers"),
                "-app", str(self.base / who / "app"), "-buildpacks", str(self.base / "bps"),
                "-order", str(self.base / "order.toml"), "-run-image", "busybox", "-cache-image", self.cache_ref,
                *self.extra, f"app-{who}"]

    def prepare(self, who: str, seed: str) -> None:
        shutil.rmtree(self.base / who, ignore_errors=True)
        (self.base / who / "layers").mkdir(parents=True)
        (self.base / who / "app").mkdir()
        (self.base / who / "app" / "seed").write_text(seed + "\n")

    def run(self, who: str, seed: str) -> str:
        self.prepare(who, seed)
        res = subprocess.run(self.args(who), env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stdout
        return res.stdout


@pytest.fixture
def shared() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="lifecycle-cache-race-"))
    try:
        shutil.copytree(LAYOUT_REPO, base / "oci", symlinks=True)
        write_buildpack(base / "bps", "cc/bp", "1.0", build=BUILD)
        write_order(base / "order.toml", [("cc/bp", "1.0")])
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _race(ws: Shared, where: str, round_no: int, committed: Callable[[], str]) -> tuple[str, str]:
    """One round: B paused at ``where``, A runs whole, B resumes. Returns (A's, B's) output."""
    ws.prepare("b", "unchanged")
    before = committed()
    proc = subprocess.Popen(ws.args("b"), env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    head: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            head.append(line)
            if line.startswith(STOP_AT[where]):
                os.kill(proc.pid, signal.SIGSTOP)
                break
        else:
            pytest.fail("build B ended before its stop line:\n" + "".join(head))
        assert committed() == before, "B committed before it was paused: the interleaving did not happen"
        a_out = ws.run("a", f"changed-{round_no}")
        assert committed() != before, a_out
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    rest, _ = proc.communicate(timeout=300)
    b_out = "".join(head) + rest
    assert proc.returncode == 0, b_out
    assert committed() != before, b_out
    return a_out, b_out


def _skopeo_copy(source: str, *flags: str) -> None:
    dest = Path(tempfile.mkdtemp(prefix="lifecycle-cache-copy-"))
    try:
        res = subprocess.run([require_tool("skopeo"), "copy", *flags, source, f"dir:{dest}"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        manifest = json.loads((dest / "manifest.json").read_text())
        for desc in [manifest["config"], *manifest["layers"]]:
            assert (dest / desc["digest"].split(":", 1)[1]).is_file(), desc
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def _layout_manifest(cache_dir: Path) -> str:
    index = cache_dir / "index.json"
    if not index.exists():
        return ""
    return str(json.loads(index.read_text())["manifests"][0]["digest"])


def _assert_outcome(where: str, b_out: str) -> None:
    if where == "after-reuse":
        assert "Reusing cache layer 'cc/bp:cached'" in b_out, b_out
    else:
        assert "Skipping reuse for layer cc/bp:cached" in b_out or "Reusing cache layer 'cc/bp:cached'" in b_out, b_out
        assert "Adding cache layer 'cc/bp:cached'" in b_out or "Reusing cache layer 'cc/bp:cached'" in b_out, b_out
    assert "Failed to export cache" not in b_out, b_out


@pytest.mark.parametrize("where", list(STOP_AT))
def test_layout_cache_image_survives_concurrent_commits(shared: Path, where: str) -> None:
    ws = Shared(shared, "oci:build-cache")
    cache_dir = ws.oci / "index.docker.io" / "library" / "build-cache" / "latest"
    ws.run("b", "unchanged")  # the cache image both builds start from
    for round_no in range(ROUNDS):
        first = _layout_manifest(cache_dir)
        reused = [d["digest"] for d in json.loads((cache_dir / "blobs" / "sha256" / first.split(":")[1])
                                                  .read_text())["layers"]]
        a_out, b_out = _race(ws, where, round_no, lambda: _layout_manifest(cache_dir))
        assert "Adding cache layer 'cc/bp:cached'" in a_out, a_out
        _assert_outcome(where, b_out)
        _skopeo_copy(f"oci:{cache_dir}:latest")
        final = json.loads((cache_dir / "blobs" / "sha256" / _layout_manifest(cache_dir).split(":")[1]).read_text())
        for desc in [final["config"], *final["layers"]]:
            assert (cache_dir / "blobs" / "sha256" / desc["digest"].split(":")[1]).is_file(), desc
        assert reused[0] in [d["digest"] for d in final["layers"]]  # B's unchanged layer, same blob
        left = sorted(p.name for p in (cache_dir / "blobs" / "sha256").iterdir() if p.name.startswith("."))
        assert left == [], left  # no pin directory or temporary file stays


@pytest.mark.parametrize("where", list(STOP_AT))
def test_registry_cache_image_survives_concurrent_commits(shared: Path, registry: Registry, where: str) -> None:
    repo = f"race-cache-{where}"
    ws = Shared(shared, registry.ref(repo), ("-insecure-registry", registry.host))

    def committed() -> str:
        res = subprocess.run([require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false",
                              f"docker://{registry.ref(repo)}"], capture_output=True, text=True, timeout=60)
        return res.stdout if res.returncode == 0 else ""

    ws.run("b", "unchanged")
    for round_no in range(ROUNDS):
        a_out, b_out = _race(ws, where, round_no, committed)
        assert "Adding cache layer 'cc/bp:cached'" in a_out, a_out
        _assert_outcome(where, b_out)
        _skopeo_copy(f"docker://{registry.ref(repo)}", "--src-tls-verify=false")
