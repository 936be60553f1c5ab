"""The analyzer through its console script and through cnb/lifecycle/analyzer."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_MANIFEST, REPO, Run, base_env


@pytest.mark.parametrize("program", ["analyzer", str(REPO / "cnb" / "lifecycle" / "analyzer")])
def test_busybox_run_image(run: Run, oci_root: Path, tmp_path: Path, program: str) -> None:
    analyzed = tmp_path / "analyzed.toml"
    res = run(program, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
              "-analyzed", str(analyzed), "my-app")
    assert res.returncode == 0, res.stdout
    data = tomllib.loads(analyzed.read_text())
    expected = f"{oci_root}/index.docker.io/library/busybox/latest@{BUSYBOX_MANIFEST}"
    assert data["run-image"]["reference"] == expected
    assert data["run-image"]["target"] == {"os": "linux", "arch": "amd64"}
    assert data["image"] == {"reference": ""}


def test_run_image_missing(run: Run, oci_root: Path, tmp_path: Path) -> None:
    analyzed = tmp_path / "analyzed.toml"
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/bad-run-image",
              "-analyzed", str(analyzed), "my-app")
    assert res.returncode == 3
    assert (f"ERROR: the run-image could not be found at path: "
            f"{oci_root}/index.docker.io/cnb/bad-run-image/latest") in res.stdout
    assert "Traceback" not in res.stdout
    assert not analyzed.exists()


def test_env_selects_oci(run: Run, oci_root: Path, tmp_path: Path) -> None:
    layers = tmp_path / "layers"
    env = base_env(CNB_USE_OCI="true", CNB_OCI_PATH=str(oci_root), CNB_RUN_IMAGE="busybox",
                   CNB_LAYERS_DIR=str(layers))
    res = run("analyzer", "my-app", env=env)
    assert res.returncode == 0, res.stdout
    assert BUSYBOX_MANIFEST in (layers / "analyzed.toml").read_text()
