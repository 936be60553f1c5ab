"""Workspaces for running the real phases as root with ``-uid 1000 -gid 1000`` (spec/trust-model.md).

pytest's tmp_path lives under a 0700 directory, so these workspaces are made under /tmp with a
traversable root, as a platform's volumes would be. The layout root and the app belong to the CNB
user (as pack's do); the layers and cache dirs are root's, for the phases' own setup to hand over.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LAYOUT_REPO, base_env, run_program
from tests.e2e.conftest import APPS, BUILDPACKS, ORDER

UID = GID = 1000
# Bytes no build may carry anywhere: written to root-only files the buildpacks try to reach.
SECRET = b"ROOT-ONLY-SECRET-9f1c2e"


def chown_tree(root: Path, uid: int = UID, gid: int = GID) -> None:
    """``chown -R`` without following links."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


@dataclass
class UserWorkspace:
    """A build workspace for the CNB user; ``secret_dir`` holds root-only files (0700 dir, 0600 files)."""

    base: Path

    @property
    def oci(self) -> Path:
        return self.base / "oci"

    @property
    def layers(self) -> Path:
        return self.base / "layers"

    @property
    def app(self) -> Path:
        return self.base / "app"

    @property
    def cache(self) -> Path:
        return self.base / "cache"

    @property
    def secret_dir(self) -> Path:
        return self.base / "secret"

    @property
    def secret_file(self) -> Path:
        return self.secret_dir / "key"

    @property
    def outside(self) -> Path:
        """A root-owned directory outside every tree a phase writes (must stay empty)."""
        return self.base / "outside"

    def image_dir(self, name: str = "my-app", tag: str = "latest") -> Path:
        return self.oci / "index.docker.io" / "library" / name / tag

    def creator(self, *extra: str, buildpacks: Path = BUILDPACKS, order: Path = ORDER,
                image: str = "my-app") -> tuple[int, str]:
        """Run the real creator as root for the CNB user; (exit code, output)."""
        res = run_program("creator", "-oci", "-oci-dir", str(self.oci), "-layers", str(self.layers),
                          "-app", str(self.app), "-buildpacks", str(buildpacks), "-order", str(order),
                          "-cache-dir", str(self.cache), "-run-image", "busybox",
                          "-uid", str(UID), "-gid", str(GID), *extra, image, env=base_env())
        assert "Traceback" not in res.stdout, res.stdout
        return res.returncode, res.stdout


@pytest.fixture
def user_ws() -> Iterator[UserWorkspace]:
    """A fresh workspace: busybox layout (user's), app copy (user's), empty layers and cache (root's),
    a root-only secret and an empty root-owned ``outside`` dir."""
    if os.geteuid() != 0:
        pytest.fail("the trust suite runs the phases as root, dropping to uid 1000")
    base = Path(tempfile.mkdtemp(prefix="lifecycle-trust-"))
    base.chmod(0o755)
    ws = UserWorkspace(base)
    try:
        shutil.copytree(LAYOUT_REPO, ws.oci, symlinks=True)
        chown_tree(ws.oci)
        shutil.copytree(APPS / "hello", ws.app, symlinks=True)
        chown_tree(ws.app)
        ws.layers.mkdir()
        ws.cache.mkdir()
        ws.outside.mkdir()
        ws.secret_dir.mkdir(mode=0o700)
        ws.secret_file.write_bytes(SECRET + b"\n")
        ws.secret_file.chmod(0o600)
        yield ws
    finally:
        shutil.rmtree(base, ignore_errors=True)
