"""CLI conventions shared by every phase: Go flag syntax, help, version, dispatch, exit codes."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import lifecycle
from lifecycle.cli._argv import normalize
from tests.conftest import BUSYBOX_MANIFEST, REPO, Run, base_env

CNB = REPO / "cnb" / "lifecycle"
TAKES = {"run-image": True, "oci": False, "layout": False, "oci-dir": True, "tag": True}


@pytest.mark.parametrize(("argv", "expected"), [
    (["-run-image", "x", "img"], ["--run-image", "x", "img"]),
    (["--run-image", "x"], ["--run-image", "x"]),
    (["-run-image=x"], ["--run-image=x"]),
    (["-run-image=a=b"], ["--run-image=a=b"]),
    (["-oci"], ["--oci"]),
    (["-oci=false", "--layout=1"], ["--no-oci", "--layout"]),
    (["-oci=F", "-oci=TRUE", "-oci=0", "-oci=t"], ["--no-oci", "--oci", "--no-oci", "--oci"]),
    (["-oci=maybe"], ["--oci=maybe"]),
    (["-tag", "a", "-tag", "b"], ["--tag", "a", "--tag", "b"]),
    (["img", "-oci"], ["img", "-oci"]),  # parsing stops at the first positional, as in Go
    (["-oci", "--", "-x"], ["--oci", "--", "-x"]),
    (["-", "-oci"], ["-", "-oci"]),
    (["-h"], ["--help"]),
    (["-help"], ["--help"]),
    (["--help"], ["--help"]),
    (["-bogus", "x"], ["--bogus", "x"]),
    (["-bogus=1"], ["--bogus=1"]),
    (["-run-image"], ["--run-image"]),
])
def test_normalize(argv: list[str], expected: list[str]) -> None:
    assert normalize(argv, TAKES) == expected


@pytest.mark.parametrize("flag", ["-help", "--help", "-h"])
def test_help(run: Run, flag: str) -> None:
    res = run("analyzer", flag)
    assert res.returncode == 0, res.stdout
    assert "--run-image" in res.stdout
    assert "--oci" in res.stdout and "--layout-dir" in res.stdout and "CNB_OCI_PATH" in res.stdout


@pytest.mark.parametrize(("program", "args"), [
    ("analyzer", ["-version"]), ("analyzer", ["--version"]), ("lifecycle", ["-version"]),
    ("lifecycle", ["analyze", "-version"]), (str(CNB / "analyzer"), ["-version"]),
])
def test_version(run: Run, program: str, args: list[str]) -> None:
    res = run(program, *args)
    assert res.returncode == 0, res.stdout
    assert res.stdout.strip() == lifecycle.__version__


@pytest.mark.parametrize("args", [["-bogus", "x"], ["--bogus=1", "x"], ["-oci=maybe", "x"], ["-run-image"]])
def test_usage_errors_exit_2(run: Run, args: list[str]) -> None:
    res = run("analyzer", *args)
    assert res.returncode == 2, res.stdout
    assert "Traceback" not in res.stdout


def test_unknown_flag_is_named(run: Run) -> None:
    res = run("analyzer", "-bogus", "x")
    assert "--bogus" in res.stdout


@pytest.mark.parametrize("program", ["lifecycle", str(CNB / "lifecycle")])
def test_umbrella_analyze(run: Run, oci_root: Path, tmp_path: Path, program: str) -> None:
    analyzed = tmp_path / "analyzed.toml"
    res = run(program, "analyze", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
              "-analyzed", str(analyzed), "my-app")
    assert res.returncode == 0, res.stdout
    reference = tomllib.loads(analyzed.read_text())["run-image"]["reference"]
    assert reference == f"{oci_root}/index.docker.io/library/busybox/latest@{BUSYBOX_MANIFEST}"


@pytest.mark.parametrize("phase", ["bogus", "analyzer", "extend"])
def test_umbrella_unknown_phase(run: Run, phase: str) -> None:
    res = run("lifecycle", phase)
    assert res.returncode == 3, res.stdout
    assert res.stdout.splitlines()[0] == f"ERROR: failed to recognize phase: {phase}"


@pytest.mark.parametrize("program", ["extender", str(CNB / "extender")])
def test_extender_is_refused_in_one_line(run: Run, program: str) -> None:
    res = run(program, "-app", "/workspace", "-kind", "build", "-log-level", "debug")
    assert (res.returncode, res.stdout) == (3, "ERROR: image extensions are not supported: this lifecycle has "
                                               "no extender\n")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_restorer_refuses_build_image(run: Run, tmp_path: Path, how: str) -> None:
    layers = tmp_path / "layers"
    layers.mkdir()
    args = ["-build-image", "my-builder:latest"] if how == "flag" else []
    env = base_env(CNB_BUILD_IMAGE="my-builder:latest") if how == "env" else base_env()
    res = run("restorer", "-layers", str(layers), *args, env=env)
    assert (res.returncode, res.stdout) == (3, "ERROR: image extensions are not supported: -build-image "
                                               "my-builder:latest asks to extend the build image\n")
    assert list(layers.iterdir()) == []


def test_umbrella_without_phase(run: Run) -> None:
    assert run("lifecycle").returncode == 3
    help_ = run("lifecycle", "-help")
    assert help_.returncode == 0 and "analyze" in help_.stdout


@pytest.mark.parametrize(("args", "message"), [
    ([], "ERROR: failed to parse arguments: received 0 arguments, but expected 1"),
    (["a", "b"], "ERROR: failed to parse arguments: received 2 arguments, but expected 1"),
])
def test_arity(run: Run, oci_root: Path, args: list[str], message: str) -> None:
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox", *args)
    assert res.returncode == 3, res.stdout
    assert message in res.stdout.splitlines()


def test_flag_after_positional_is_a_positional(run: Run, oci_root: Path) -> None:
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox", "my-app", "-daemon")
    assert res.returncode == 3, res.stdout
    assert "Warning: unconsumed flag-like positional arg: " in res.stdout
    assert "ERROR: failed to parse arguments: received 2 arguments, but expected 1" in res.stdout


@pytest.mark.parametrize(("args", "env"), [(["-log-level", "loud"], {}), ([], {"CNB_LOG_LEVEL": "loud"})])
def test_bad_log_level(run: Run, oci_root: Path, args: list[str], env: dict[str, str]) -> None:
    res = run("analyzer", *args, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox", "my-app",
              env=base_env(**env))
    assert res.returncode == 3, res.stdout
    assert res.stdout.strip() == "ERROR: failed to parse arguments: invalid log level 'loud'"


def test_log_level_error_hides_info(run: Run, oci_root: Path, tmp_path: Path) -> None:
    res = run("analyzer", "-log-level", "error", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
              "-analyzed", str(tmp_path / "a.toml"), "my-app")
    assert res.returncode == 0 and res.stdout == ""


_NO_DOCKER = """
import sys
from lifecycle.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "requests", "httpx"))
print("CODE", code, "HEAVY", heavy)
"""


def test_oci_mode_does_not_import_docker(oci_root: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-c", _NO_DOCKER, "analyzer", "-oci", "-oci-dir", str(oci_root),
         "-run-image", "busybox", "-analyzed", str(tmp_path / "a.toml"), "my-app"],
        env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert res.stdout.splitlines()[-1] == "CODE 0 HEAVY []", res.stdout
    assert (tmp_path / "a.toml").is_file()
