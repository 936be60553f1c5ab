"""Real ``pack`` (v0.40.6, built by the install step) drives this lifecycle end to end.

Everything runs against the private test dockerd with ``--pull-policy never``: a build image made
from the debootstrap base with python3 removed (so the phases can only run as the frozen
executable), the busybox run image from tests/fixtures/layout-repo, the sample buildpacks and our
lifecycle tarball become a builder with ``pack builder create``. App images are checked by what
``docker run`` prints. Registry traffic goes to a docker-registry on 127.0.0.1 port 80: pack puts a
layout build's run image under ``<PACK_HOME>/layout-repo/<registry>/...`` and mounts that path into
the build container, and a ``host:port`` registry name makes the mount spec invalid, so the registry
name has no port.

Phases started as root drop to CNB_USER_ID before any I/O (spec/trust-model.md): they reach the
root-owned daemon socket pack mounts over connections opened before the drop, and write the
layout directory pack creates as root for ``oci:<dir>`` after handing it to the CNB user.

The fixtures are module-scoped and the module shares the xdist group ``lifecycle-image`` with the
image test, so the frozen lifecycle, the lifecycle image and the builder are built once.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecycle.api import BUILDPACK_APIS, PLATFORM_APIS
from lifecycle.descriptor import DECLARED_VERSION
from tests.conftest import BUSYBOX, BUSYBOX_LAYER, REPO, require_tool
from tests.support.dist import base_tarball
from tests.support.gotools import go_tool
from tests.support.services import Dockerd, Registry, start_registry

pytestmark = [pytest.mark.dockerd, pytest.mark.registry, pytest.mark.xdist_group("lifecycle-image")]

BUILD_IMAGE = "cnb-build:bookworm"
RUN_IMAGE = "busybox:latest"
BUILDER = "sample-builder:test"
REGISTRY = "127.0.0.1"  # port 80, see the module docstring
CNB_UID = 1000
HELLO = ["Hello from samples/hello", "Hello, world!"]
PYTHON_PATHS = ("usr/bin/python", "usr/bin/pydoc", "usr/lib/python3", "usr/local/lib/python3")


@dataclass
class Pack:
    """``pack`` with its own home, pointed at the test dockerd."""

    exe: Path
    home: Path
    dockerd: Dockerd

    def env(self) -> dict[str, str]:
        return self.dockerd.env() | {"PACK_HOME": str(self.home), "PACK_VOLUME_KEY": "lifecycle-tests",
                                     "NO_COLOR": "1"}

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        res = subprocess.run([str(self.exe), *args], env=self.env(), capture_output=True, text=True,
                             timeout=timeout)
        out = res.stdout + res.stderr
        if check:
            assert res.returncode == 0, f"pack {' '.join(args)} failed ({res.returncode}):\n{out}"
        assert "Traceback" not in out, out
        return out

    def build(self, image: str, app: Path, *extra: str) -> str:
        """``pack build`` of ``app`` with our builder, never pulling."""
        return self(
            "build", image, "--builder", BUILDER, "--path", str(app), "--pull-policy", "never",
            "--docker-host", "inherit", *extra)


def _python_file(name: str) -> bool:
    name = name.removeprefix("./")
    return name.startswith(PYTHON_PATHS)


def import_build_image(dockerd: Dockerd) -> None:
    """The debootstrap base without python3, plus the CNB user (1000:1000) and the env pack reads,
    streamed straight into ``docker import`` (no container, no extra layer)."""
    extra = {"./etc/passwd": f"cnb:x:{CNB_UID}:{CNB_UID}:CNB build user:/home/cnb:/bin/sh\n".encode(),
             "./etc/group": f"cnb:x:{CNB_UID}:\n".encode()}
    proc = subprocess.Popen(
        [dockerd.docker, "-H", dockerd.host, "import",
         "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--change", f"ENV CNB_USER_ID={CNB_UID}", "--change", f"ENV CNB_GROUP_ID={CNB_UID}",
         "--change", f"USER {CNB_UID}:{CNB_UID}", "-", BUILD_IMAGE],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dockerd.env())
    assert proc.stdin is not None
    with tarfile.open(base_tarball(), "r|") as src, \
            tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            if _python_file(member.name):
                continue
            if member.isfile():
                data = src.extractfile(member).read() + extra.get(member.name, b"")  # type: ignore[union-attr]
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member)
            if member.name == "./home":
                home = tarfile.TarInfo("./home/cnb")
                home.type, home.mode, home.mtime = tarfile.DIRTYPE, 0o755, member.mtime
                home.uid = home.gid = CNB_UID
                dst.addfile(home)
    proc.stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read()  # small: docker import prints only errors there
    assert proc.wait(timeout=600) == 0, err.decode()


@pytest.fixture(scope="module")
def pack_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1:80 holding the busybox run image as ``127.0.0.1/busybox``."""
    reg = start_registry(tmp_path_factory.mktemp("pack-registry"), port=80)
    try:
        skopeo = require_tool("skopeo")
        res = subprocess.run([skopeo, "copy", "-q", "--dest-tls-verify=false", f"oci:{BUSYBOX}",
                              f"docker://{REGISTRY}/busybox:latest"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def builder(dockerd: Dockerd, lifecycle_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Pack:
    """The build image, the run image in the daemon, and ``pack builder create`` with our tarball."""
    work = tmp_path_factory.mktemp("pack")
    pack = Pack(go_tool("pack"), work / "pack-home", dockerd)
    import_build_image(dockerd)
    skopeo = require_tool("skopeo")
    res = subprocess.run([skopeo, "copy", "-q", "--dest-daemon-host", dockerd.host, f"oci:{BUSYBOX}",
                          f"docker-daemon:{RUN_IMAGE}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    buildpacks = REPO / "cnb" / "buildpacks"
    config = work / "builder.toml"
    config.write_text(
        "".join(f'[[buildpacks]]\n  uri = "{d}"\n\n' for d in sorted(buildpacks.glob("*/*")))
        + (REPO / "cnb" / "order.toml").read_text()
        + f'\n[build]\n  image = "{BUILD_IMAGE}"\n\n[[run.images]]\n  image = "{RUN_IMAGE}"\n\n'
        + '[[targets]]\n  os = "linux"\n  arch = "amd64"\n\n'
        + f'[lifecycle]\n  uri = "{lifecycle_tarball}"\n')
    pack("config", "experimental", "true")  # OCI layout output (oci:<dir>) is experimental in pack
    pack("builder", "create", BUILDER, "--config", str(config), "--pull-policy", "never")
    return pack


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    shutil.copytree(REPO / "samples" / "apps" / "hello", path)
    return path


def docker_run(dockerd: Dockerd, image: str, *args: str) -> list[str]:
    return dockerd.run("run", "--rm", "--network", "none", *args, image).stdout.splitlines()


def phases(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("===> ")]


def test_build_image_has_no_python(builder: Pack, dockerd: Dockerd) -> None:
    res = dockerd.run("run", "--rm", "--network", "none", BUILD_IMAGE, "sh", "-c",
                      "id -u; command -v python3 python3.11 python || echo no-python; "
                      "ls /usr/lib | grep -c python || true")
    assert res.stdout.split() == [str(CNB_UID), "no-python", "0"], res.stdout + res.stderr


def test_inspect_builder_shows_our_lifecycle(builder: Pack) -> None:
    out = builder("builder", "inspect", BUILDER)
    local = out.split("LOCAL:", 1)[1]
    assert f"Version: {DECLARED_VERSION}" in local, out
    assert f"Supported: {', '.join(str(v) for v in BUILDPACK_APIS)}" in local, out
    assert f"Supported: {', '.join(str(v) for v in PLATFORM_APIS)}" in local, out
    assert "samples/hello" in local and "samples/only-txt" in local, out


def test_trusted_daemon_build_then_rebuild_after_an_edit(builder: Pack, dockerd: Dockerd, app: Path) -> None:
    out = builder.build("pack-app:latest", app, "--trust-builder")
    assert phases(out) == ["===> ANALYZING", "===> DETECTING", "===> RESTORING", "===> BUILDING",
                           "===> EXPORTING"], out
    assert "[analyzer]" not in out, out  # one creator container, not five phases
    assert "Successfully built image 'pack-app:latest'" in out
    assert docker_run(dockerd, "pack-app:latest") == HELLO

    (app / "hello.txt").write_text("Hello again, edited\n")
    out = builder.build("pack-app:latest", app, "--trust-builder")
    assert "Reusing layer 'buildpacksio/lifecycle:launcher'" in out, out
    assert docker_run(dockerd, "pack-app:latest") == ["Hello from samples/hello", "Hello again, edited"]


def test_untrusted_build_with_our_lifecycle_image(builder: Pack, dockerd: Dockerd, lifecycle_image: str,
                                                  app: Path) -> None:
    out = builder.build("pack-untrusted:latest", app, "--trust-builder=false", "--lifecycle-image",
                        lifecycle_image)
    assert phases(out) == ["===> ANALYZING", "===> DETECTING", "===> RESTORING", "===> BUILDING",
                           "===> EXPORTING"], out
    for phase in ("[analyzer]", "[detector]", "[builder]", "[exporter]"):  # the restorer has nothing to say
        assert phase in out, out  # five containers, the lifecycle image's for the ones with registry access
    assert docker_run(dockerd, "pack-untrusted:latest") == HELLO


def test_layout_builds_full_and_sparse_and_publish(builder: Pack, dockerd: Dockerd, pack_registry: Registry, app: Path,
                                       tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    layout_args = ("--trust-builder", "--run-image", f"{REGISTRY}/busybox:latest", "--network", "host")
    full = tmp_path / "full"
    # pack copies the run image into <PACK_HOME>/layout-repo as the user running it (root here) with
    # layer blobs 0600, which the phases, running as the CNB user, may not read (spec/trust-model.md:
    # the platform makes the run image readable to that user). pack uses a layout already there, so
    # the platform's copy is put there first, readable.
    run_layout = builder.home / "layout-repo" / REGISTRY / "busybox" / "latest"
    shutil.rmtree(builder.home / "layout-repo", ignore_errors=True)
    shutil.copytree(BUSYBOX, run_layout)
    subprocess.run(["chmod", "-R", "a+rX", str(builder.home / "layout-repo")], check=True)
    out = builder.build(f"oci:{full}", app, *layout_args)
    assert "Successfully built image" in out, out
    assert (full / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]).is_file()

    shutil.rmtree(builder.home / "layout-repo")  # else the run image is there, complete, from the first build
    sparse = tmp_path / "sparse"
    out = builder.build(f"oci:{sparse}", app, *layout_args, "--sparse")
    missing = sparse / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]
    assert not missing.exists(), "a sparse layout leaves the run image's layers out"
    # Loading needs every layer: the missing one comes from the run image's own layout.
    shutil.copy2(BUSYBOX / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1], missing)

    for name, layout in (("pack-layout-full", full), ("pack-layout-sparse", sparse)):
        res = subprocess.run([skopeo, "copy", "-q", "--dest-daemon-host", dockerd.host, f"oci:{layout}",
                              f"docker-daemon:{name}:latest"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert docker_run(dockerd, f"{name}:latest") == HELLO, name

    # --publish, in the same test: only one test (so one xdist worker) starts the port-80 registry.
    image = f"{REGISTRY}/pack-published:latest"
    out = builder.build(image, app, "--trust-builder", "--publish", "--run-image", f"{REGISTRY}/busybox:latest",
                        "--network", "host", "--insecure-registry", REGISTRY)
    assert f"Successfully built image '{image}'" in out, out
    assert any(m == "PUT" and uri == "/v2/pack-published/manifests/latest" and status == 201
               for m, uri, status in pack_registry.requests()), pack_registry.requests()
    dockerd.run("pull", "-q", image)
    assert docker_run(dockerd, image) == HELLO


def test_rebase_onto_a_new_run_image(builder: Pack, dockerd: Dockerd, app: Path) -> None:
    builder.build("pack-rebased:latest", app, "--trust-builder")
    before = dockerd.run("image", "inspect", "--format", "{{.Id}}", "pack-rebased:latest").stdout.strip()
    dockerd.run("rm", "-f", "run-image-v2", check=False)
    dockerd.run("run", "--name", "run-image-v2", "--network", "none", RUN_IMAGE, "sh", "-c",
                "echo 'run image v2' > /etc/run-image-release")
    dockerd.run("commit", "run-image-v2", "busybox:v2")
    dockerd.run("rm", "run-image-v2")
    out = builder("rebase", "pack-rebased:latest", "--run-image", "busybox:v2", "--force", "--pull-policy", "never")
    assert "Successfully rebased image 'pack-rebased:latest'" in out, out
    after = dockerd.run("image", "inspect", "--format", "{{.Id}}", "pack-rebased:latest").stdout.strip()
    assert after != before
    res = dockerd.run("run", "--rm", "--network", "none", "--entrypoint", "/bin/cat", "pack-rebased:latest",
                      "/etc/run-image-release")
    assert res.stdout == "run image v2\n"
    assert docker_run(dockerd, "pack-rebased:latest") == HELLO
