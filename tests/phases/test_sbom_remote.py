"""The analyzer restores the previous image's launch SBOM in registry and daemon mode too (the layer
is streamed from the registry, or taken out of a streamed ``docker save``), so a buildpack that
reuses a launch layer without rewriting its SBOM keeps it in the next image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import BUSYBOX, REPO, Run, base_env, require_tool
from tests.support.services import Dockerd, Registry

LAUNCHER_SBOM = Path("sbom/launch/buildpacksio_lifecycle/launcher/sbom.cdx.json")


def _build(run: Run, work: Path, *mode: str, image: str, env: dict[str, str]) -> str:
    layers = work / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir(parents=True)
    app = work / "app"
    if not app.exists():
        shutil.copytree(REPO / "samples" / "apps" / "hello", app)
    res = run("creator", *mode, "-layers", str(layers), "-app", str(app),
              "-buildpacks", str(REPO / "cnb" / "buildpacks"), "-order", str(REPO / "cnb" / "order.toml"),
              image, env=env)
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
    subprocess.run([require_tool("skopeo"), "copy", "--dest-tls-verify=false", f"oci:{BUSYBOX}",
                    f"docker://{registry.host}/library/busybox:latest"], check=True, capture_output=True)
    mode = ("-insecure-registry", registry.host, "-run-image", f"{registry.host}/library/busybox")
    image = f"{registry.host}/sbom-restore-app"
    _build(run, tmp_path, *mode, image=image, env=base_env())
    out = _analyze(run, tmp_path, *mode, image=image, env=base_env())
    _check_restored(tmp_path, out)


def test_daemon_previous_sbom_is_restored(run: Run, dockerd: Dockerd, tmp_path: Path) -> None:
    subprocess.run([require_tool("skopeo"), "copy", "--dest-daemon-host", dockerd.host, f"oci:{BUSYBOX}",
                    "docker-daemon:busybox:latest"], check=True, capture_output=True)
    env = base_env(DOCKER_HOST=dockerd.host)
    mode = ("-daemon", "-run-image", "busybox:latest")
    _build(run, tmp_path, *mode, image="sbom-restore-app", env=env)
    out = _analyze(run, tmp_path, *mode, image="sbom-restore-app", env=env)
    _check_restored(tmp_path, out)
