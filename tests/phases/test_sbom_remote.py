"""The analyzer restores the previous image's launch SBOM in registry and daemon mode too (the layer
is streamed from the registry, or taken out of a streamed ``docker save``), so a buildpack that
reuses a launch layer without rewriting its SBOM keeps it in the next image."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Run, base_env
from tests.support.sample import load_busybox, push_busybox, sample_build_args
from tests.support.services import Dockerd, Registry

LAUNCHER_SBOM = Path("sbom/launch/buildpacksio_lifecycle/launcher/sbom.cdx.json")


def _build(run: Run, work: Path, *mode: str, image: str, env: dict[str, str]) -> str:
    res = run("creator", *mode, *sample_build_args(work), image, env=env)
    assert res.returncode == 0, res.stdout
    return res.stdout


def _analyze(run: Run, work: Path, *mode: str, image: str, env: dict[str, str]) -> str:
    layers = work / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir(parents=True)
    res = run("analyzer", *mode, "-layers", str(layers), image, env=env)
    assert res.returncode == 0, res.stdout
    return res.stdout


def _check_restored(work: Path, out: str) -> None:
    assert "Restoring data for SBOM from previous image" in out, out
    assert "Warning" not in out, out
    layers = work / "layers"
    assert '"bomFormat": "CycloneDX"' in (layers / LAUNCHER_SBOM).read_text()
    assert not list((layers / "sbom").glob(".launch-restore-*")) and not list(layers.glob(".sbom-*"))


def test_registry_previous_sbom_is_restored(run: Run, registry: Registry, tmp_path: Path) -> None:
    push_busybox(registry.host)
    mode = ("-insecure-registry", registry.host, "-run-image", f"{registry.host}/library/busybox")
    image = f"{registry.host}/sbom-restore-app"
    _build(run, tmp_path, *mode, image=image, env=base_env())
    out = _analyze(run, tmp_path, *mode, image=image, env=base_env())
    _check_restored(tmp_path, out)


def test_daemon_previous_sbom_is_restored(run: Run, dockerd: Dockerd, tmp_path: Path) -> None:
    load_busybox(dockerd.host)
    env = base_env(DOCKER_HOST=dockerd.host)
    mode = ("-daemon", "-run-image", "busybox:latest")
    _build(run, tmp_path, *mode, image="sbom-restore-app", env=env)
    out = _analyze(run, tmp_path, *mode, image="sbom-restore-app", env=env)
    _check_restored(tmp_path, out)
