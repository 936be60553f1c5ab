"""The launcher's build (`make launcher`): reproducible bytes, a static binary under 3 MB, its Go
tests, and the golden tables both languages share (tests/launch/golden)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from lifecycle.files import metadata as metadata_file
from lifecycle.launch.table import render_table
from lifecycle.phases._buildenv import apply_env_dir
from tests.conftest import REPO

GOLDEN = Path(__file__).resolve().parent / "golden"
GO = Path("/usr/local/go/bin/go")


def _go() -> str:
    found = shutil.which("go") or (str(GO) if GO.exists() else None)
    if found is None:
        pytest.fail("go is not installed (the launcher is built from source with Go >= 1.22)")
    return found


def _clean_tree(dest: Path) -> Path:
    """The launcher's sources and the Makefile, nothing built."""
    dest.mkdir()
    shutil.copy2(REPO / "Makefile", dest / "Makefile")
    shutil.copytree(REPO / "launcher", dest / "launcher")
    return dest


def _make_launcher(tree: Path) -> bytes:
    res = subprocess.run(["make", "-s", "launcher", f"GO={_go()}"], cwd=tree, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return (tree / "build" / "launcher" / "launcher").read_bytes()


def test_launcher_builds_to_the_same_bytes_twice(tmp_path: Path, launcher_bin: Path) -> None:
    first = _make_launcher(_clean_tree(tmp_path / "a"))
    second = _make_launcher(_clean_tree(tmp_path / "b"))
    assert first == second
    assert launcher_bin.read_bytes() == first  # the checkout's own build, same recipe and toolchain


def test_launcher_is_static_and_small(launcher_bin: Path) -> None:
    data = launcher_bin.read_bytes()
    assert len(data) < 3 * 1024 * 1024
    assert data[:4] == b"\x7fELF" and data[4] == 2  # 64-bit ELF
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = {struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)}
    assert 3 not in types  # no PT_INTERP: no dynamic loader, no libc needed
    assert 2 not in types  # no PT_DYNAMIC
    assert str(REPO).encode() not in data  # -trimpath: no build paths


def test_go_sources_formatted_vetted_and_tested() -> None:
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "", "CGO_ENABLED": "0"}
    gofmt = Path(_go()).with_name("gofmt")
    res = subprocess.run([str(gofmt), "-l", "."], cwd=REPO / "launcher", capture_output=True, text=True)
    assert (res.returncode, res.stdout) == (0, ""), res.stdout + res.stderr
    for cmd in (["vet", "./..."], ["test", "./..."]):
        res = subprocess.run([_go(), *cmd], cwd=REPO / "launcher", capture_output=True, text=True, timeout=900,
                             env=env)
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("case", sorted(p.parent.name for p in GOLDEN.glob("*/metadata.toml")))
def test_golden_tables_render_from_metadata(case: str) -> None:
    meta = metadata_file.read(GOLDEN / case / "metadata.toml")
    assert render_table(meta) == (GOLDEN / case / "launch.table").read_text()


@pytest.mark.parametrize("case", sorted(p.parent.name for p in GOLDEN.glob("*/case.json")))
def test_golden_env_dirs_at_build_time(case: str) -> None:
    """The build-time env-file rules give what the launcher's do (its go test reads the same case)."""
    data = json.loads((GOLDEN / case / "case.json").read_text())
    values = dict(data["before"])
    apply_env_dir(values, GOLDEN / case / "env", "override")
    assert values == data["after"]
