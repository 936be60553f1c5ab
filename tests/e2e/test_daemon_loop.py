"""pack's loop against a real dockerd: build into the daemon, change things, build again; `docker run`
after every step prints the current content. Each rebuild sends the daemon only the layers whose
layer chain it lacks, with bytes from the launch cache, the previous image or the layers directory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.conftest import REPO, base_env, run_program
from tests.support.sample import load_busybox
from tests.support.services import Dockerd

IMAGE = "loop-app:latest"


def _creator(dockerd: Dockerd, work: Path, *extra: str, run_image: str = "busybox:latest") -> str:
    layers = work / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir(parents=True)
    res = run_program("creator", "-daemon", "-log-level", "debug", "-layers", str(layers), "-app", str(work / "app"),
                      "-buildpacks", str(work / "buildpacks"), "-order", str(REPO / "cnb" / "order.toml"),
                      "-run-image", run_image, *extra, IMAGE, env=base_env(DOCKER_HOST=dockerd.host))
    assert res.returncode == 0, res.stdout
    assert "Traceback" not in res.stdout
    return res.stdout


def _docker_run(dockerd: Dockerd) -> list[str]:
    res = dockerd.run("run", "--rm", "--network", "none", IMAGE, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.splitlines()


def _sources(out: str) -> dict[str, str]:
    """Layer key -> where its bytes came from, from the exporter's debug lines."""
    found = re.findall(r"Layer '([^']+)' \(sha256:[0-9a-f]+\) is new to the daemon below reused layers: its bytes "
                       r"come from the (launch cache|previous image|layers directory)", out)
    return dict(found)


def test_daemon_rebuild_loop(dockerd: Dockerd, tmp_path: Path) -> None:
    load_busybox(dockerd.host)
    shutil.copytree(REPO / "samples" / "apps" / "hello", tmp_path / "app")
    shutil.copytree(REPO / "cnb" / "buildpacks", tmp_path / "buildpacks")
    launcher_etc = {"buildpacksio/lifecycle:launcher", "buildpacksio/lifecycle:config",
                    "buildpacksio/lifecycle:process-types"}

    # 1. First build.
    out = _creator(dockerd, tmp_path)
    assert _sources(out) == {}
    assert _docker_run(dockerd) == ["Hello from samples/hello", "Hello, world!"]

    # 2. Edit an app file: the app layer is new, so the reused layers above it are new chains.
    (tmp_path / "app" / "hello.txt").write_text("Hello again!\n")
    out = _creator(dockerd, tmp_path)
    assert "Reusing layer 'buildpacksio/lifecycle:launcher'" in out
    assert _sources(out) == dict.fromkeys(launcher_etc, "previous image")
    assert _docker_run(dockerd) == ["Hello from samples/hello", "Hello again!"]

    # 3. Change a buildpack's launch layer: everything above it is a new chain.
    build = tmp_path / "buildpacks" / "samples_hello" / "0.0.1" / "bin" / "build"
    build.write_text(build.read_text().replace("printf 'Hello' >", "printf 'Howdy' >"))
    out = _creator(dockerd, tmp_path)
    assert "Adding layer 'samples/hello:hello'" in out
    assert set(_sources(out)) == {"buildpacksio/lifecycle:launch.sbom", "app", *launcher_etc}
    assert _docker_run(dockerd) == ["Howdy from samples/hello", "Hello again!"]

    # 4. The previous image is gone from the daemon: nothing to reuse, everything is built.
    dockerd.run("rmi", IMAGE)
    out = _creator(dockerd, tmp_path)
    assert _sources(out) == {}
    assert _docker_run(dockerd) == ["Howdy from samples/hello", "Hello again!"]

    # 5. With a launch cache volume: the first build fills it, the next takes bytes from it.
    launch_cache = tmp_path / "launch-cache"
    launch_cache.mkdir()
    (tmp_path / "app" / "hello.txt").write_text("Hello, launch cache!\n")
    out = _creator(dockerd, tmp_path, "-launch-cache", str(launch_cache))
    assert _sources(out) == dict.fromkeys(launcher_etc, "previous image")
    # The layers whose bytes this build had (the new app layer, the ones above it); the others the daemon
    # had under the same layers, so their bytes were never needed.
    assert len(list((launch_cache / "committed").glob("sha256:*.tar"))) == 4
    assert _docker_run(dockerd) == ["Howdy from samples/hello", "Hello, launch cache!"]
    (tmp_path / "app" / "hello.txt").write_text("Hello from the cache!\n")
    out = _creator(dockerd, tmp_path, "-launch-cache", str(launch_cache))
    assert _sources(out) == dict.fromkeys(launcher_etc, "launch cache")
    assert _docker_run(dockerd) == ["Howdy from samples/hello", "Hello from the cache!"]

    # 6. The previous image was built on another run image: every reused layer is a new chain.
    context = tmp_path / "run-b"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox:latest\nRUN echo b > /run-b\n")
    dockerd.run("build", "--network", "none", "-t", "run-b:latest", str(context))
    out = _creator(dockerd, tmp_path, run_image="run-b:latest")
    assert "Reusing layer 'samples/hello:hello'" in out
    assert set(_sources(out)) == {"samples/hello:hello", "buildpacksio/lifecycle:launch.sbom", "app", *launcher_etc}
    assert set(_sources(out).values()) == {"previous image"}
    assert _docker_run(dockerd) == ["Howdy from samples/hello", "Hello from the cache!"]
    assert dockerd.run("run", "--rm", "--network", "none", "--entrypoint", "cat", IMAGE, "/run-b").stdout == "b\n"
