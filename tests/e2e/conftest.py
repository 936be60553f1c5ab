"""A platform's workspace for end-to-end builds of the sample apps with the real console scripts:
``creator`` (or the five phases) on ``cnb/buildpacks`` + ``cnb/order.toml`` and the busybox layout."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from tests.conftest import LAYOUT_REPO, REPO, base_env, require_tool, run_program

BUILDPACKS = REPO / "cnb" / "buildpacks"
ORDER = REPO / "cnb" / "order.toml"
APPS = REPO / "samples" / "apps"
BANNERS = ["===> ANALYZING", "===> DETECTING", "===> RESTORING", "===> BUILDING", "===> EXPORTING"]


@dataclass
class Workspace:
    """Layout root, layers, app and cache dirs under one tmp dir; the same paths for every build."""

    base: Path
    app_source: Path = APPS / "hello"

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

    def fresh(self, *, oci: bool = False, cache: bool = False) -> None:
        """A fresh layers dir and app copy (as a platform gives every build); optionally a fresh
        layout root (busybox only) and an empty cache dir."""
        for path, wipe in ((self.layers, True), (self.app, True), (self.oci, oci), (self.cache, cache)):
            if wipe:
                shutil.rmtree(path, ignore_errors=True)
        if not self.oci.exists():
            shutil.copytree(LAYOUT_REPO, self.oci, symlinks=True)
        shutil.copytree(self.app_source, self.app, symlinks=True)
        self.layers.mkdir()
        self.cache.mkdir(exist_ok=True)

    def run(self, program: str, *args: str, code: int = 0, **env: str) -> str:
        """Run a console script; assert its exit code and that it did not crash; its output."""
        res = run_program(program, *args, env=base_env(**env))
        assert res.returncode == code, f"{program} exited {res.returncode}, want {code}:\n{res.stdout}"
        assert "Traceback" not in res.stdout, res.stdout
        return res.stdout

    def creator(self, *extra: str, image: str = "my-app", code: int = 0,
                buildpacks: Path = BUILDPACKS, order: Path = ORDER) -> str:
        return self.run("creator", "-oci", "-oci-dir", str(self.oci), "-layers", str(self.layers),
                        "-app", str(self.app), "-buildpacks", str(buildpacks), "-order", str(order),
                        "-run-image", "busybox", *extra, image, code=code)

    def image_dir(self, name: str = "my-app", tag: str = "latest") -> Path:
        return self.oci / "index.docker.io" / "library" / name / tag

    def digest(self, name: str = "my-app") -> str:
        return Layout(self.image_dir(name)).image().manifest_digest

    def diff_ids(self, name: str = "my-app") -> list[str]:
        return Layout(self.image_dir(name)).image().diff_ids

    def blobs(self, name: str = "my-app") -> set[str]:
        return blob_files(self.image_dir(name))


def blob_files(layout_dir: Path) -> set[str]:
    """Names of the blob files of a layout (temp files excluded)."""
    return {p.name for p in (layout_dir / "blobs" / "sha256").iterdir() if not p.name.startswith(".")}


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def assert_banners(output: str, banners: list[str] = BANNERS) -> None:
    """The given phase banners appear, in order, and no others."""
    assert lines(output, "===> ") == banners, output


def skopeo_to_daemon(image_dir: Path, host: str, name: str) -> None:
    """Load a layout image into a dockerd with skopeo."""
    res = subprocess.run([require_tool("skopeo"), "copy", "--dest-daemon-host", host, f"oci:{image_dir}:latest",
                          f"docker-daemon:{name}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace with samples/apps/hello, fresh."""
    w = Workspace(tmp_path / "ws")
    w.base.mkdir()
    w.fresh()
    return w
