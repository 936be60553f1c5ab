"""run.toml mirror selection in the analyzer, in layout, registry and daemon modes: the first
accessible image on the output image's registry, else the first accessible one; none accessible:
exit 3 with upstream's ``failed to find accessible run image``."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from tests.conftest import Run, base_env
from tests.support.sample import load_busybox, push_busybox
from tests.support.services import Dockerd, Registry

NONE = "ERROR: failed to find accessible run image"


def _run_toml(path: Path, image: str, *mirrors: str) -> Path:
    listed = ", ".join(f'"{m}"' for m in mirrors)
    path.write_text(f'[[images]]\nimage = "{image}"\nmirrors = [{listed}]\n\n[[images]]\nimage = "never/used"\n')
    return path


def _analyze(run: Run, tmp_path: Path, run_toml: Path, output: str, *mode: str,
             env: dict[str, str] | None = None) -> tuple[int, str, dict[str, object]]:
    layers = tmp_path / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir()
    res = run("analyzer", *mode, "-layers", str(layers), "-run", str(run_toml), output, env=env or base_env())
    analyzed = layers / "analyzed.toml"
    data = tomllib.loads(analyzed.read_text()) if analyzed.exists() else {}
    return res.returncode, res.stdout, data


def _run_image(data: dict[str, object]) -> str:
    table = data["run-image"]
    assert isinstance(table, dict)
    return str(table["image"])


def test_layout_mode_picks_the_accessible_mirror(run: Run, oci_root: Path, tmp_path: Path) -> None:
    busybox = oci_root / "index.docker.io" / "library" / "busybox" / "latest"
    shutil.copytree(busybox, oci_root / "registry.example.com" / "cnb" / "run" / "latest")
    mode = ("-oci", "-oci-dir", str(oci_root))
    # The image itself is not in the layout root: the first mirror that is wins.
    toml = _run_toml(tmp_path / "run.toml", "example.com/absent/run", "example.com/also-absent", "busybox")
    code, out, data = _analyze(run, tmp_path, toml, "my-app", *mode)
    assert code == 0, out
    assert _run_image(data) == str(busybox)
    # Both accessible: the one on the output image's registry wins, whatever the listed order.
    toml = _run_toml(tmp_path / "run.toml", "busybox", "registry.example.com/cnb/run")
    code, out, data = _analyze(run, tmp_path, toml, "registry.example.com/team/app", *mode)
    assert code == 0, out
    assert _run_image(data) == str(oci_root / "registry.example.com" / "cnb" / "run" / "latest")
    code, out, data = _analyze(run, tmp_path, toml, "my-app", *mode)
    assert code == 0, out
    assert _run_image(data) == str(busybox)
    # None accessible.
    toml = _run_toml(tmp_path / "run.toml", "example.com/absent/run", "example.com/also-absent")
    code, out, data = _analyze(run, tmp_path, toml, "my-app", *mode)
    assert code == 3, out
    assert out.splitlines()[-1] == f"{NONE} (tried: example.com/absent/run, example.com/also-absent)"
    assert data == {}


def test_registry_mode_picks_the_accessible_mirror(run: Run, registry: Registry, tmp_path: Path) -> None:
    other = registry.start_another()
    here = push_busybox(registry.host, "mirrors/run")
    there = push_busybox(other.host, "mirrors/run")
    mode = ("-insecure-registry", registry.host, "-insecure-registry", other.host)
    output = f"{registry.host}/mirrors-app"
    # Listed first but on another registry: the mirror on the output's registry wins.
    toml = _run_toml(tmp_path / "run.toml", there, here)
    code, out, data = _analyze(run, tmp_path, toml, output, *mode)
    assert code == 0, out
    assert _run_image(data) == here
    # Nothing accessible on the output's registry: the first accessible one elsewhere.
    toml = _run_toml(tmp_path / "run.toml", f"{registry.host}/mirrors/absent", there)
    code, out, data = _analyze(run, tmp_path, toml, output, *mode)
    assert code == 0, out
    assert _run_image(data) == there
    toml = _run_toml(tmp_path / "run.toml", f"{registry.host}/mirrors/absent", f"{other.host}/mirrors/absent")
    code, out, data = _analyze(run, tmp_path, toml, output, *mode)
    assert code == 3, out
    assert out.splitlines()[-1].startswith(NONE)


def test_daemon_mode_picks_the_image_in_the_daemon(run: Run, dockerd: Dockerd, tmp_path: Path) -> None:
    load_busybox(dockerd.host, "mirror-run:latest")
    env = base_env(DOCKER_HOST=dockerd.host)
    toml = _run_toml(tmp_path / "run.toml", "example.com/absent/run", "mirror-run")
    code, out, data = _analyze(run, tmp_path, toml, "mirror-app", "-daemon", env=env)
    assert code == 0, out
    assert _run_image(data) == "mirror-run"
    toml = _run_toml(tmp_path / "run.toml", "example.com/absent/run", "absent-too")
    code, out, data = _analyze(run, tmp_path, toml, "mirror-app", "-daemon", env=env)
    assert code == 3, out
    assert out.splitlines()[-1] == f"{NONE} (tried: example.com/absent/run, absent-too)"
