"""The creator end to end: samples/apps/hello built with cnb/buildpacks on the busybox layout,
the image checked with oci-image-tool, umoci and a real dockerd; failing phases' exit codes;
``-skip-restore``; ``samples/demo.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from tests.conftest import REPO, base_env, require_tool
from tests.e2e.conftest import BANNERS, BUILDPACKS, ORDER, Workspace, assert_banners, lines, skopeo_to_daemon
from tests.support.services import Dockerd


def test_creator_builds_a_valid_image(ws: Workspace, tmp_path: Path) -> None:
    out = ws.creator()
    assert_banners(out)
    assert "samples/hello 0.0.1" in out
    assert "samples/hello: building cached layer" in out
    assert "Adding layer 'samples/hello:hello'" in out
    assert "Setting default process type 'web'" in out
    assert f"Saving {ws.image_dir()}..." in out
    report = tomllib.loads((ws.layers / "report.toml").read_text())["image"]
    digest = ws.digest()
    assert report["digest"] == digest
    assert f"*** Images ({digest}):" in out

    res = subprocess.run([require_tool("oci-image-tool"), "validate", "--type", "image", str(ws.image_dir())],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr

    bundle = tmp_path / "bundle"
    res = subprocess.run([require_tool("umoci"), "unpack", "--image", f"{ws.image_dir()}:latest", str(bundle)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file()
    app = rootfs / str(ws.app).lstrip("/")
    assert (app / "hello.txt").read_text() == "Hello, world!\n"
    assert (app / "app.sh").is_file()
    bp = rootfs / str(ws.layers).lstrip("/") / "samples_hello"
    assert (bp / "hello" / "env.launch" / "GREETING").read_text() == "Hello"
    assert os.access(bp / "hello" / "bin" / "hello", os.X_OK)
    assert not (bp / "cache-data").exists()  # cache-only: not in the image
    for proc in ("web", "worker"):
        assert os.readlink(rootfs / "cnb" / "process" / proc) == "/cnb/lifecycle/launcher"
    image = Layout(ws.image_dir()).image()
    assert image.config.dump()["config"]["Entrypoint"] == ["/cnb/process/web"]


@pytest.mark.dockerd
def test_creator_image_runs_under_dockerd(ws: Workspace, dockerd: Dockerd) -> None:
    ws.creator()
    name = f"e2e-hello-{os.getpid()}:latest"
    skopeo_to_daemon(ws.image_dir(), dockerd.host, name)

    def docker_run(*args: str) -> str:
        res = dockerd.run("run", "--rm", "--network", "none", *args, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    # The default process (web): GREETING from the hello layer's env.launch, `hello` on PATH from
    # its bin/, and the app's file.
    assert docker_run(name).splitlines() == ["Hello from samples/hello", "Hello, world!"]
    # Another process type through its /cnb/process symlink: the app's own script.
    assert docker_run("--entrypoint", "/cnb/process/worker", name).splitlines() == ["app.sh says: Hello"]
    # The launch env as the process sees it.
    env = dict(line.split("=", 1) for line in docker_run("--entrypoint", "/cnb/lifecycle/launcher", name,
                                                        "--", "env").splitlines() if "=" in line)
    assert env["GREETING"] == "Hello"
    assert f"{ws.layers}/samples_hello/hello/bin" in env["PATH"].split(":")
    assert "CNB_LAYERS_DIR" not in env  # the launcher keeps its own variables from the app (upstream)


def test_creator_builds_the_txt_app(tmp_path: Path) -> None:
    """The other order group: an app with only.txt gets samples/only-txt alone."""
    ws = Workspace(tmp_path / "ws", app_source=REPO / "samples" / "apps" / "txt")
    ws.base.mkdir()
    ws.fresh()
    out = ws.creator()
    assert_banners(out)
    assert "samples/only-txt 0.0.1" in out
    assert "samples/hello 0.0.1" not in out
    assert "Setting default process type 'txt'" in out
    image = Layout(ws.image_dir()).image()
    assert image.config.dump()["config"]["Entrypoint"] == ["/cnb/process/txt"]


def _failing_buildpack(base: Path) -> tuple[Path, Path]:
    """A buildpacks dir with one buildpack that always detects and whose build exits 7; its order."""
    bp = base / "buildpacks" / "test_fails" / "1.0.0"
    (bp / "bin").mkdir(parents=True)
    (bp / "buildpack.toml").write_text('api = "0.10"\n[buildpack]\nid = "test/fails"\nversion = "1.0.0"\n')
    (bp / "bin" / "detect").write_text("#!/bin/sh\nexit 0\n")
    (bp / "bin" / "build").write_text("#!/bin/sh\necho 'test/fails: about to fail'\nexit 7\n")
    for script in ("detect", "build"):
        (bp / "bin" / script).chmod(0o755)
    order = base / "order.toml"
    order.write_text('[[order]]\n[[order.group]]\nid = "test/fails"\nversion = "1.0.0"\n')
    return base / "buildpacks", order


@pytest.mark.parametrize("case", ["analyze", "detect", "restore", "build", "export"])
def test_failing_phase_exit_code_is_the_creators(ws: Workspace, tmp_path: Path, case: str) -> None:
    extra: list[str] = []
    buildpacks, order = BUILDPACKS, ORDER
    if case == "analyze":
        code, banners, errors = 3, BANNERS[:1], ["ERROR: the run-image could not be found at path: "]
        extra = ["-run-image", "no/such-run-image"]
    elif case == "detect":
        for path in ws.app.iterdir():  # an empty app: no buildpack detects
            path.unlink()
        code, banners = 20, BANNERS[:2]
        errors = ["ERROR: No buildpack groups passed detection.",
                  "ERROR: Please check that you are running against the correct path.",
                  "ERROR: failed to detect: no buildpacks participating"]
    elif case == "restore":
        code, banners, errors = 42, BANNERS[:3], ["ERROR: failed to create volume cache: "]
        extra = ["-cache-dir", str(tmp_path / "no-such-cache-dir")]
    elif case == "build":
        buildpacks, order = _failing_buildpack(tmp_path)
        code, banners, errors = 51, BANNERS[:4], ["ERROR: failed to build: exit status 7"]
    else:
        code, banners = 62, BANNERS
        errors = ["ERROR: failed to export: determining entrypoint: tried to set nope to default"]
        extra = ["-process-type", "nope"]
    out = ws.creator(*extra, code=code, buildpacks=buildpacks, order=order)
    assert_banners(out, banners)
    got = lines(out, "ERROR:")
    assert len(got) == len(errors), out
    for line, want in zip(got, errors, strict=True):
        assert line.startswith(want), out
    if case == "build":
        assert "test/fails: about to fail" in out
    assert not ws.image_dir().exists()  # nothing was exported


def test_skip_restore_on_second_build(ws: Workspace) -> None:
    cache = ["-cache-dir", str(ws.cache)]
    ws.creator(*cache)
    first = ws.digest()
    ws.fresh()
    out = ws.creator(*cache, "-skip-restore")
    assert_banners(out)
    assert "Skipping buildpack layer analysis" in out
    assert "Restoring" not in out
    assert "samples/hello: building cached layer" in out
    assert "samples/hello: reusing cached layer" not in out
    # Rebuilt to the same bytes, so the image and the cache are unchanged.
    assert ws.digest() == first
    assert "Reusing cache layer 'samples/hello:cache-data'" in out


@pytest.mark.dockerd
def test_demo_script(dockerd: Dockerd) -> None:
    """`make demo`: builds into ./demo-oci and ./demo-work (gitignored) and runs the image with
    the Docker engine named by DOCKER_HOST (here a private dockerd)."""
    env = base_env(DOCKER_HOST=dockerd.host)
    env.pop("CNB_PLATFORM_API")  # the demo sets it itself
    res = subprocess.run([sys.executable, str(REPO / "samples" / "demo.py")], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert res.returncode == 0, res.stdout
    out = res.stdout
    assert "Traceback" not in out
    assert_banners(out)
    report = tomllib.loads((REPO / "demo-work" / "layers" / "report.toml").read_text())["image"]
    assert f"digest:   {report['digest']}" in out
    layer_lines = [line for line in out.splitlines() if line.startswith("  sha256:")]
    image = Layout(Path(report["tags"][0])).image()
    assert len(layer_lines) == len(image.manifest.layers)
    assert any("Layer: 'hello', Created by buildpack: samples/hello@0.0.1" in line for line in layer_lines)
    assert any("Application Layer" in line for line in layer_lines)
    assert "Hello from samples/hello" in out  # the image ran
    assert "Hello, world!" in out
