"""Our tar writer against Go's archive/tar, the writer upstream's layers come from: random entries
(long and non-ASCII names and link targets, big IDs, special modes) give the same bytes."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from lifecycle.layers.tar import Entry, write_tar

GOTAR = Path(__file__).resolve().parent / "gotar"


@pytest.fixture(scope="module")
def gotar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/differential/gotar built with the machine's Go (stdlib only, no network)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(go, os.X_OK):
        pytest.fail("go is not installed (the install step provides Go 1.26)")
    out = tmp_path_factory.mktemp("gotar") / "gotar"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOPROXY": "off"}
    res = subprocess.run([go, "build", "-o", str(out), "."], cwd=GOTAR, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return out


def _name(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 8)):
        length = max(1, r.choice([1, 3, 10, 30, 50, 60, 99, 100, 101, 120, 154, 155, 156]) + r.randint(-2, 2))
        alphabet = "abc/" if r.random() < 0.05 else ("abc\u00e9" if r.random() < 0.1 else "abc")
        parts.append("".join(r.choice(alphabet) for _ in range(length)).strip("/") or "a")
    return "/" + "/".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_same_bytes_as_go(gotar: Path, tmp_path: Path, seed: int) -> None:
    r = random.Random(seed)
    entries, lines = [], []
    for _ in range(1500):
        kind = r.choice(["dir", "file", "symlink"])
        name = _name(r)
        link = _name(r) + r.choice(["", "/"]) if kind == "symlink" else ""
        uid = r.choice([0, 1000, 2097151, 2097152, 70000000])
        gid = r.choice([0, 1000, 3000000])
        mode = r.choice([0o755, 0o644, 0o1777, 0o4755, 0o2750])
        size = r.choice([0, 1, 511, 513]) if kind == "file" else 0
        source = tmp_path / f"content-{size}"
        source.write_bytes(b"x" * size)
        entries.append(Entry(name, kind, mode, uid, gid, source=source if kind == "file" else None, size=size,
                             linkname=link))
        lines.append("\t".join([kind, name, link, format(mode, "o"), str(uid), str(gid), str(size)]))
    ours = io.BytesIO()
    write_tar(entries, ours)
    go = subprocess.run([str(gotar)], input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=120)
    assert go.returncode == 0, go.stderr.decode()
    if ours.getvalue() != go.stdout:
        pairs = enumerate(zip(ours.getvalue(), go.stdout, strict=False))
        at = next((i for i, (a, b) in pairs if a != b), min(len(ours.getvalue()), len(go.stdout)))
        block = at // 512 * 512
        pytest.fail(f"first difference at byte {at}:\nours {ours.getvalue()[block:block + 512]!r}\n"
                    f"go   {go.stdout[block:block + 512]!r}")
