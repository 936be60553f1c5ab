"""Daemon mode against a private dockerd: analyzer reads image IDs, layouts load and run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lifecycle.errors import ImageError
from lifecycle.image.daemon import DaemonStore, DockerArchive
from lifecycle.image.layout import Layout
from tests.conftest import BUSYBOX, BUSYBOX_LAYER, REPO, Run, base_env, require_tool
from tests.image.test_registry import BUSYBOX_CONFIG, app_layout, one_error
from tests.support.services import Dockerd

pytestmark = [pytest.mark.dockerd]


@pytest.fixture(scope="module")
def busybox_in_daemon(dockerd: Dockerd) -> str:
    subprocess.run([require_tool("skopeo"), "copy", "--dest-daemon-host", dockerd.host, f"oci:{BUSYBOX}",
                    "docker-daemon:busybox:latest"], check=True, capture_output=True, timeout=300)
    return BUSYBOX_CONFIG  # the daemon's image ID is the config digest


def test_analyzer_daemon_mode(dockerd: Dockerd, busybox_in_daemon: str, run: Run, tmp_path: Path) -> None:
    out = tmp_path / "analyzed.toml"
    env = base_env(DOCKER_HOST=dockerd.host)
    res = run("analyzer", "-daemon", "-run-image", "busybox", "-analyzed", str(out), "my-app", env=env)
    assert res.returncode == 0, res.stdout
    assert 'Image with name "my-app" not found' in res.stdout
    data = tomllib.loads(out.read_text())
    assert data["run-image"]["reference"] == busybox_in_daemon
    assert data["run-image"]["image"] == "busybox"
    assert data["run-image"]["target"] == {"os": "linux", "arch": "amd64"}
    assert data["image"] == {"reference": ""}


def test_analyzer_daemon_env_and_previous(dockerd: Dockerd, busybox_in_daemon: str, run: Run,
                                          tmp_path: Path) -> None:
    label = {"io.buildpacks.lifecycle.metadata": json.dumps({"runImage": {"topLayer": "sha256:t"}})}
    layout = tmp_path / "prev"
    app_layout(layout, {"app/x": b"x\n"}, labels=label)
    image_id = DaemonStore(dockerd.host).load_layout_image(layout, "latest", "prev-app:v1")
    out = tmp_path / "analyzed.toml"
    env = base_env(DOCKER_HOST=dockerd.host, CNB_USE_DAEMON="true", CNB_RUN_IMAGE="busybox:latest")
    res = run("analyzer", "-analyzed", str(out), "prev-app:v1", env=env)
    assert res.returncode == 0, res.stdout
    data = tomllib.loads(out.read_text())
    assert data["image"]["reference"] == image_id
    assert data["metadata"]["run-image"]["top-layer"] == "sha256:t"


def test_daemon_socket_missing(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "analyzed.toml"
    env = base_env(DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    res = run("analyzer", "-daemon", "-run-image", "busybox", "-analyzed", str(out), "my-app", env=env)
    line = one_error(res, 32)
    assert "cannot connect to the Docker daemon" in line and "no-docker.sock" in line
    assert not out.exists()


def test_oci_and_daemon_together(run: Run, tmp_path: Path) -> None:
    res = run("analyzer", "-oci", "-daemon", "-run-image", "busybox", "-analyzed", str(tmp_path / "a.toml"),
              "my-app")
    assert "exporting to multiple targets is unsupported" in one_error(res, 3)


def test_oci_mode_never_imports_docker(tmp_path: Path) -> None:
    code = ("import sys\n"
            "from lifecycle.cli._command import run_program\n"
            f"rc = run_program('analyzer', ['-oci', '-oci-dir', {str(REPO / 'tests/fixtures/layout-repo')!r},"
            f" '-run-image', 'busybox', '-analyzed', {str(tmp_path / 'a.toml')!r}, 'my-app'],"
            " {'CNB_PLATFORM_API': '0.15'})\n"
            "print(rc, 'docker' in sys.modules, 'httpx' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip().splitlines()[-1] == "0 False False", res.stdout + res.stderr


def test_load_layout_image_and_run(dockerd: Dockerd, tmp_path: Path) -> None:
    layout = tmp_path / "app"
    app_layout(layout, {"app/hello.txt": b"hello from the layout\n"}, tag="v2")
    store = DaemonStore(dockerd.host)
    image_id = store.load_layout_image(layout, "v2", "127.0.0.1:5000/team/loaded:v2")
    config_digest = Layout(layout).image(tag="v2").manifest.config.digest
    assert image_id == config_digest
    found = store.find("127.0.0.1:5000/team/loaded:v2")
    assert found is not None and found.identifier == image_id
    assert found.repo_tags == ["127.0.0.1:5000/team/loaded:v2"]
    out = dockerd.run("run", "--rm", "--network", "none", "127.0.0.1:5000/team/loaded:v2", "cat", "/app/hello.txt")
    assert out.stdout == "hello from the layout\n"
    # Docker Hub names are stored in their familiar form.
    store.load_layout_image(layout, "v2", "index.docker.io/library/loaded-hub")
    assert dockerd.run("image", "inspect", "loaded-hub:latest", "--format", "{{.Id}}").stdout.strip() == image_id


def test_load_sparse_layout_uses_daemon_layers(dockerd: Dockerd, busybox_in_daemon: str, tmp_path: Path) -> None:
    layout = tmp_path / "sparse"
    app_layout(layout, {"app/s.txt": b"sparse ok\n"}, sparse=True)
    assert not (layout / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]).exists()
    DaemonStore(dockerd.host).load_layout_image(layout, "latest", "sparse-app")
    out = dockerd.run("run", "--rm", "--network", "none", "sparse-app", "cat", "/app/s.txt")
    assert out.stdout == "sparse ok\n"


def test_load_sparse_layout_without_daemon_layers_fails_clearly(dockerd: Dockerd, tmp_path: Path) -> None:
    layout = tmp_path / "orphan"
    app_layout(layout, {"app/o.txt": b"o\n"})
    top = json.loads((layout / "blobs" / "sha256" / Layout(layout).image().manifest_digest.split(":")[1])
                     .read_bytes())["layers"][1]["digest"]
    (layout / "blobs" / "sha256" / top.split(":")[1]).unlink()
    with pytest.raises(ImageError) as err:
        DaemonStore(dockerd.host).load_layout_image(layout, "latest", "orphan-app")
    assert "the archive leaves out layers" in str(err.value) and top.split(":")[1] in str(err.value)
    assert "expected to hold their layer chains" in str(err.value)


def test_archive_is_streamed_and_loadable_by_docker_cli(dockerd: Dockerd, tmp_path: Path) -> None:
    layout = tmp_path / "cli"
    shutil.copytree(BUSYBOX, layout)
    archive = DockerArchive(Layout(layout), "latest", "via-cli:1")
    chunks = list(archive.stream())
    assert len(chunks) > 5  # produced piecewise, not as one buffer
    out = dockerd.run("load", input=b"".join(chunks))
    assert "via-cli:1" in out.stdout
