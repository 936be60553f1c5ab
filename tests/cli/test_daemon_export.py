"""Daemon mode end to end: the creator reads the run image from a real dockerd, loads the app
image into it, `docker run` runs it, and a rebuild reuses layers."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import Run, base_env
from tests.support.sample import load_busybox, sample_build_args
from tests.support.services import Dockerd


def creator(run: Run, dockerd: Dockerd, work: Path, name: str) -> tuple[int, str]:
    res = run("creator", "-daemon", *sample_build_args(work), "-run-image", "busybox:latest", name,
              env=base_env(DOCKER_HOST=dockerd.host))
    return res.returncode, res.stdout


def test_creator_daemon_runs_and_reuses(run: Run, dockerd: Dockerd, tmp_path: Path) -> None:
    load_busybox(dockerd.host)
    name = "daemon-app:latest"
    code, out = creator(run, dockerd, tmp_path, name)
    assert code == 0, out
    report = tomllib.loads((tmp_path / "layers" / "report.toml").read_text())["image"]
    assert report["image-id"].startswith("sha256:")
    inspect = dockerd.run("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    assert inspect == report["image-id"]
    res = dockerd.run("run", "--rm", "--network", "none", name, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Hello from " in res.stdout, res.stdout
    assert "Hello, world!" in res.stdout
    code, out = creator(run, dockerd, tmp_path, name)
    assert code == 0, out
    assert "Reusing layer 'samples/hello:hello'" in out
    again = tomllib.loads((tmp_path / "layers" / "report.toml").read_text())["image"]
    assert again["image-id"] == report["image-id"]
