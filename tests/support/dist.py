"""Session fixtures for the lifecycle distribution: the frozen phases, the lifecycle tarball, and the
lifecycle image in the test dockerd.

Freezing takes a minute or two of CPU, so it happens once per test run: the first xdist worker that
needs it builds into the run's shared temp directory under a file lock, the others reuse it. The
image is built once per dockerd (per worker); the tests that need it share an xdist group.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import built_launcher
from tests.support.services import Dockerd

REPO = Path(__file__).resolve().parent.parent.parent
FREEZE = REPO / "packaging" / "freeze.sh"
DIST = REPO / "packaging" / "dist.py"
PYTHON = Path(sys.executable)
BUILD_IMAGE_SH = REPO / "packaging" / "build_image.sh"
MAKE_BASE = REPO / "tests" / "image_build" / "make_base.sh"
BASE_CACHE = Path(os.environ.get("LIFECYCLE_BASE_CACHE") or "/var/cache/lifecycle-base")
BASE_TARBALL = BASE_CACHE / "bookworm-minbase-python3.tar"
BASE = "lifecycle-base:bookworm"
LIFECYCLE_IMAGE = "cnb-lifecycle:test"


@contextmanager
def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """``(dir, ready)`` in the temp root all xdist workers share, held under a lock; ``ready`` says
    an earlier holder finished making it (it leaves ``<dir>/.done``)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # each worker's basetemp is a child of the run's
    path = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path, (path / ".done").exists()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def freeze(out: Path) -> Path:
    """Run packaging/freeze.sh into ``out``; returns ``out``."""
    res = subprocess.run([str(FREEZE), str(PYTHON), str(out)], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, f"freeze.sh failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return out


def launcher() -> Path:
    """The launcher the tarball carries: the one ``make launcher`` built."""
    return built_launcher()


def base_tarball() -> Path:
    """The cached debootstrap rootfs (``make image-inputs``); missing fails the test, never skips."""
    if not BASE_TARBALL.is_file() or BASE_TARBALL.stat().st_size == 0:
        pytest.fail(f"prepared image inputs are missing: no base rootfs tarball at {BASE_TARBALL}; "
                    "run `make image-inputs` (the install step; it runs debootstrap)")
    return BASE_TARBALL


@pytest.fixture(scope="session")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the frozen ``lifecycle`` and the phase symlinks, built once per run."""
    with shared_dir(tmp_path_factory, "frozen") as (path, ready):
        if not ready:
            freeze(path)
            (path / ".done").touch()
    return path


@pytest.fixture(scope="session")
def lifecycle_tarball(frozen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lifecycle-<version>+linux.x86-64.tgz`` made from :func:`frozen`, once per run."""
    with shared_dir(tmp_path_factory, "lifecycle-dist") as (path, ready):
        if not ready:
            res = subprocess.run([str(PYTHON), str(DIST), "tarball", str(frozen), str(launcher()), str(path)],
                                 capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, res.stdout + res.stderr
            (path / ".done").touch()
    (tarball,) = path.glob("lifecycle-*.tgz")
    return tarball


@pytest.fixture(scope="session")
def base_image(dockerd: Dockerd) -> str:
    """``lifecycle-base:bookworm`` imported into the test dockerd from the cached tarball."""
    tarball = base_tarball()
    env = dockerd.env() | {"LIFECYCLE_BASE_CACHE": str(tarball.parent)}
    res = subprocess.run([str(MAKE_BASE), "--import-only", dockerd.host, BASE], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return BASE


@pytest.fixture(scope="session")
def lifecycle_image(dockerd: Dockerd, base_image: str, lifecycle_tarball: Path) -> str:
    """The lifecycle image (packaging/build_image.sh) in the test dockerd, built once per daemon."""
    res = subprocess.run([str(BUILD_IMAGE_SH), str(lifecycle_tarball), LIFECYCLE_IMAGE, base_image],
                         env=dockerd.env() | {"PYTHON": str(PYTHON)}, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    return LIFECYCLE_IMAGE
