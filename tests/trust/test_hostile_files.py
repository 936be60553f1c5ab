"""Hostile TOML and env files: every TOML file a phase reads (order.toml, buildpack.toml, group.toml,
plan.toml, analyzed.toml, project metadata, and the launch.toml, build.toml, <layer>.toml and env
files a buildpack writes) goes through one capped reader (``lifecycle.files._toml.load`` on
``lifecycle.fs.read_file``). A FIFO, a device, a directory, a sparse 3 GiB file, deep nesting or
wrong types in its place give one ``ERROR:`` line at once, the documented exit code, never a hang
and never exit 1 (spec/trust-model.md, spec/exit-codes.md)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LAYOUT_REPO, base_env, run_program
from tests.phases.buildpacks import Workspace, write_buildpack, write_group, write_order

DEEP_TOML = b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero: endless bytes


def _directory(path: Path) -> None:
    path.mkdir()


def _sparse(path: Path) -> None:
    with path.open("wb") as f:
        f.truncate(3 << 30)


def _deep(path: Path) -> None:
    path.write_bytes(DEEP_TOML)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "FIFO": (_fifo, "is a FIFO, not a regular file"),
    "device": (_device, "is a character device, not a regular file"),
    "directory": (_directory, "is a directory, not a regular file"),
    "sparse 3 GiB": (_sparse, "is larger than 16777216 bytes"),
    "nested deeply": (_deep, "nested too deeply"),
}


def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path).make()
    write_buildpack(ws.buildpacks, "ok/bp", "1.0")
    write_order(ws.order, [("ok/bp", "1.0")])
    write_group(ws.layers / "group.toml", ("ok/bp", "1.0", "0.10"))
    (ws.layers / "plan.toml").write_text("")
    return ws


def _replace(path: Path, how: str) -> None:
    if path.exists():
        path.unlink()
    DAMAGE[how][0](path)


def _one_error(res_out: str, code: int, want: int, message: str) -> None:
    errors = [line for line in res_out.splitlines() if line.startswith("ERROR:")]
    assert code == want, res_out
    assert len(errors) == 1 and message in errors[0], res_out
    assert "Traceback" not in res_out


# file (relative to the workspace), phase, exit code
PLATFORM_FILES = {
    "order.toml": ("detector", 22),
    "buildpacks/ok_bp/1.0/buildpack.toml": ("detector", 22),
    "layers/group.toml": ("builder", 3),
    "layers/plan.toml": ("builder", 3),
    "layers/analyzed.toml": ("exporter", 3),
    "project-metadata.toml": ("exporter", 3),
}


@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize("rel", list(PLATFORM_FILES))
def test_platform_toml_files(tmp_path: Path, rel: str, how: str) -> None:
    ws = _workspace(tmp_path)
    phase, code = PLATFORM_FILES[rel]
    _replace(ws.root / rel, how)
    if phase == "detector":
        args = ws.detector_args()
    elif phase == "builder":
        args = ws.builder_args("-group", str(ws.layers / "group.toml"), "-plan", str(ws.layers / "plan.toml"))
    else:
        shutil.copytree(LAYOUT_REPO, ws.root / "oci", symlinks=True)
        if rel != "layers/analyzed.toml":
            (ws.layers / "analyzed.toml").write_text('[run-image]\nreference = "busybox"\n')
        args = ["-oci", "-oci-dir", str(ws.root / "oci"), "-layers", str(ws.layers), "-app", str(ws.app),
                "-group", str(ws.layers / "group.toml"), "-analyzed", str(ws.layers / "analyzed.toml"),
                "-project-metadata", str(ws.root / "project-metadata.toml"), "my-app"]
    res = run_program(phase, *args, env=base_env(), timeout=60)
    _one_error(res.stdout, res.returncode, code, DAMAGE[how][1])
    assert str(ws.root / rel) in res.stdout


# bin/build of a buildpack that leaves a hostile file where the builder reads one
BUILDPACK_FILES = {
    "launch.toml": 'mkfifo "$1/launch.toml"',
    "build.toml": 'mkfifo "$1/build.toml"',
    "<layer>.toml": 'mkfifo "$1/lay.toml"',
    "env file of a build layer": 'mkdir -p "$1/lay/env"; mkfifo "$1/lay/env/FOO"\n'
                                 "printf '[types]\\nbuild = true\\n' > \"$1/lay.toml\"",
    "sparse launch.toml": 'truncate -s 3G "$1/launch.toml"',
    "deeply nested build.toml": "python3 -c 'print(\"a = \" + \"[\" * 100000 + \"]\" * 100000)' > \"$1/build.toml\"",
}


@pytest.mark.parametrize("what", list(BUILDPACK_FILES))
def test_files_a_buildpack_writes(tmp_path: Path, what: str) -> None:
    ws = _workspace(tmp_path)
    write_buildpack(ws.buildpacks, "ok/bp", "1.0", build=BUILDPACK_FILES[what])
    res = run_program("builder", *ws.builder_args("-group", str(ws.layers / "group.toml"),
                                                  "-plan", str(ws.layers / "plan.toml")),
                      env=base_env(), timeout=60)
    message = "larger than" if "sparse" in what else "nested too deeply" if "nested" in what else "is a FIFO"
    _one_error(res.stdout, res.returncode, 52, message)


WRONG_TYPES = {
    "order.toml": ("order = 5\n", "detector", 22),
    "buildpacks/ok_bp/1.0/buildpack.toml": ('api = 5\n[buildpack]\nid = ["x"]\n', "detector", 22),
    "layers/group.toml": ('group = "ok/bp"\n', "builder", 3),
    "layers/plan.toml": ("entries = 5\n", "builder", 3),
}


@pytest.mark.parametrize("rel", list(WRONG_TYPES))
def test_platform_toml_files_of_wrong_types(tmp_path: Path, rel: str) -> None:
    ws = _workspace(tmp_path)
    text, phase, code = WRONG_TYPES[rel]
    (ws.root / rel).write_text(text)
    args = ws.detector_args() if phase == "detector" else ws.builder_args(
        "-group", str(ws.layers / "group.toml"), "-plan", str(ws.layers / "plan.toml"))
    res = run_program(phase, *args, env=base_env(), timeout=60)
    _one_error(res.stdout, res.returncode, code, "")
