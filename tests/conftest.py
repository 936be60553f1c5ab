"""Shared test helpers: run the real console scripts on real layout directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
LAYOUT_REPO = FIXTURES / "layout-repo"
BUSYBOX = LAYOUT_REPO / "index.docker.io" / "library" / "busybox" / "latest"
BUSYBOX_MANIFEST = "sha256:f75f3d1a317fc82c793d567de94fc8df2bece37acd5f2bd364a0d91a0d1f3dab"
BUSYBOX_LAYER = "sha256:405fecb6a2fa4f29683f977e7e3b852bf6f8975a2aba647d234d2371894943da"
BIN = Path(sys.executable).parent

# Real services (docker-registry, dockerd) started by the tests themselves.
pytest_plugins = ["tests.support.services", "tests.support.dist"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment: no CNB_* from the caller, Platform API 0.15, venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNB_") and k != "SOURCE_DATE_EPOCH"}
    env["CNB_PLATFORM_API"] = "0.15"
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def run_program(program: str | Path, *args: str, env: dict[str, str] | None = None,
                cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a console script (``analyzer``) or a path (``cnb/lifecycle/analyzer``); merge stderr."""
    exe = str(program) if os.sep in str(program) else str(BIN / str(program))
    return subprocess.run([exe, *args], env=env if env is not None else base_env(), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.fixture
def oci_root(tmp_path: Path) -> Path:
    """A writable copy of the busybox layout repo."""
    root = tmp_path / "oci"
    shutil.copytree(LAYOUT_REPO, root, symlinks=True)
    return root


@pytest.fixture
def run() -> Run:
    """Run a console script; see :func:`run_program`."""
    return run_program


LAUNCHER = REPO / "build" / "launcher" / "launcher"


def built_launcher() -> Path:
    """The app images' launcher ``make launcher`` built; missing is a failure, never a skip."""
    if not (LAUNCHER.is_file() and os.access(LAUNCHER, os.X_OK)):
        pytest.fail(f"{LAUNCHER} is missing: run `make launcher` (make test does)")
    return LAUNCHER


@pytest.fixture(scope="session")
def launcher_bin() -> Path:
    """The built launcher; see :func:`built_launcher`."""
    return built_launcher()


def require_tool(name: str) -> str:
    """Path of a real tool the test needs; CI installs them, so a missing one fails, not skips."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (run `make install`, which installs it)")
    return path
