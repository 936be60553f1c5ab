"""The OCI-layout distribution flow on our output, with the pinned Go tools (tests/tools/go-tools.txt):
oras moves our layouts to the test registry on 127.0.0.1 and back, notation signs them in place
and the signatures survive our rebuilds, and layouts crane writes work as run and previous images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from tests.conftest import BUSYBOX, BUSYBOX_MANIFEST, LAYOUT_REPO, Run, base_env
from tests.differential.workspace import make_app, make_layers
from tests.support.gotools import go_tool
from tests.support.sample import push_busybox, sample_build_args
from tests.support.services import Registry

pytestmark = pytest.mark.tools


def tool(name: str, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    """Run the pinned Go tool ``name``; its output (stdout and stderr), asserting the exit code."""
    res = subprocess.run([str(go_tool(name)), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=300, env=env)
    assert res.returncode == code, f"{name} {' '.join(args)}:\n{res.stdout}"
    return res.stdout


@dataclass
class Build:
    """An OCI root with the busybox run image, a layers dir and an app dir."""

    root: Path
    oci: Path
    layers: Path
    app: Path
    launcher: Path

    def image_dir(self, name: str = "my-app", tag: str = "latest") -> Path:
        return self.oci / "index.docker.io" / "library" / name / tag

    def analyze(self, run: Run, *args: str, run_image: str = "busybox", image: str = "my-app") -> dict[str, object]:
        res = run("analyzer", "-oci", "-oci-dir", str(self.oci), "-layers", str(self.layers),
                  "-run-image", run_image, *args, image, env=base_env())
        assert res.returncode == 0, res.stdout
        return tomllib.loads((self.layers / "analyzed.toml").read_text())

    def export(self, run: Run, *names: str) -> str:
        """Export; ``names`` may start with flags (``-sbom-referrer``)."""
        res = run("exporter", "-oci", "-oci-dir", str(self.oci), "-layers", str(self.layers), "-app", str(self.app),
                  "-launcher", str(self.launcher), *(names or ("my-app",)), env=base_env())
        assert res.returncode == 0, res.stdout
        return res.stdout

    def build(self, run: Run, *names: str, run_image: str = "busybox") -> str:
        self.analyze(run, run_image=run_image, image=names[0] if names else "my-app")
        return self.export(run, *names)


@pytest.fixture
def build(tmp_path: Path) -> Build:
    oci = tmp_path / "oci"
    shutil.copytree(LAYOUT_REPO, oci)
    make_layers(tmp_path / "layers")
    make_app(tmp_path / "app")
    launcher = tmp_path / "launcher"
    shutil.copy(go_tool("launcher"), launcher)
    os.chmod(launcher, 0o755)
    return Build(tmp_path, oci, tmp_path / "layers", tmp_path / "app", launcher)


def tagged(layout: Path, tag: str = "latest") -> str:
    """The manifest digest ``tag`` names in ``layout``'s index.json."""
    return Layout(layout).image(tag).manifest_digest


# ---- oras ---------------------------------------------------------------------------------------

def test_oras_copies_our_layout_to_the_registry_and_back(run: Run, build: Build, registry: Registry) -> None:
    build.build(run)
    layout = build.image_dir()
    digest = tagged(layout)
    target = registry.ref("oras/my-app", "v1")
    out = tool("oras", "cp", "--from-oci-layout", f"{layout}:latest", "--to-plain-http", target)
    assert digest in out
    fetched = tool("oras", "manifest", "fetch", "--plain-http", "--descriptor", target)
    assert json.loads(fetched)["digest"] == digest
    # Back into a layout where our resolver looks for a previous image; the analyzer reads it.
    back = build.image_dir("from-oras")
    back.parent.mkdir(parents=True)
    tool("oras", "cp", "--from-plain-http", target, "--to-oci-layout", f"{back}:latest")
    local = tool("oras", "manifest", "fetch", "--oci-layout", f"{back}:latest")
    assert local.encode() == (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    analyzed = build.analyze(run, "-previous-image", "from-oras")
    assert analyzed["image"] == {"reference": f"{back}@{digest}"}
    # Rebuilding on it as previous image reuses every layer.
    res = run("exporter", "-oci", "-oci-dir", str(build.oci), "-layers", str(build.layers), "-app", str(build.app),
              "-launcher", str(build.launcher), "my-app", env=base_env())
    assert res.returncode == 0, res.stdout
    assert "Adding layer" not in res.stdout
    assert "Reused 1/1 app layer(s)" in res.stdout


# ---- notation -----------------------------------------------------------------------------------

TRUST_POLICY = {"version": "1.0", "trustPolicies": [{
    "name": "lifecycle-test", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
    "trustStores": ["ca:lifecycle-test"], "trustedIdentities": ["*"]}]}


@pytest.fixture
def notation_env(tmp_path: Path) -> dict[str, str]:
    """notation's config and keys under tmp_path (never ~/.config), a test key and a trust policy."""
    env = base_env(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"),
                   XDG_CACHE_HOME=str(tmp_path / "cache"), NOTATION_EXPERIMENTAL="1")
    env.pop("NOTATION_CONFIG", None)
    tool("notation", "cert", "generate-test", "--default", "lifecycle-test", env=env)
    policy = tmp_path / "config" / "notation" / "trustpolicy.json"
    policy.write_text(json.dumps(TRUST_POLICY))
    return env


def signatures(layout: Path) -> list[dict[str, object]]:
    index = json.loads((layout / "index.json").read_text())
    return [d for d in index["manifests"]
            if "org.opencontainers.image.ref.name" not in (d.get("annotations") or {})]


def verify(layout: Path, ref: str, env: dict[str, str], code: int = 0) -> str:
    return tool("notation", "verify", "--oci-layout", "--scope", "local/my-app", f"{layout}{ref}", env=env, code=code)


def test_notation_signatures_survive_rebuilds(run: Run, build: Build, notation_env: dict[str, str],
                                              tmp_path: Path) -> None:
    build.build(run, "my-app", "my-app:v2")
    layout = build.image_dir()
    digest = tagged(layout)
    assert "Successfully signed" in tool("notation", "sign", "--oci-layout", f"{layout}@{digest}", env=notation_env)
    [signature] = signatures(layout)
    manifest = json.loads((layout / "blobs" / "sha256" / str(signature["digest"]).split(":")[1]).read_text())
    assert manifest["subject"]["digest"] == digest
    assert "Successfully verified" in verify(layout, f"@{digest}", notation_env)
    assert not (tmp_path / "home" / ".config").exists()

    # Another tag: exported (into its own layout, where the resolver maps it) and added by oras into this
    # layout. Then the signed tag rebuilt from the same inputs: same digest, signature and tag kept, verifies.
    build.build(run, "my-app:v3")
    tool("oras", "tag", "--oci-layout", f"{layout}:latest", "pinned")
    build.build(run, "my-app")
    assert tagged(layout) == digest
    assert tagged(layout, "pinned") == digest
    assert signatures(layout) == [signature]
    assert "Successfully verified" in verify(layout, ":latest", notation_env)

    # A changed app: the tag moves to the new image; the signature manifest, its blobs and the image it
    # signs stay in the layout; the new image is not signed.
    (build.app / "hello.txt").write_text("changed\n")
    build.build(run, "my-app")
    new = tagged(layout)
    assert new != digest
    assert signatures(layout) == [signature]
    for blob in (digest, str(signature["digest"]), manifest["layers"][0]["digest"]):
        assert (layout / "blobs" / "sha256" / blob.split(":")[1]).is_file()
    assert "no signature is associated" in verify(layout, f"@{new}", notation_env, code=1)
    assert tagged(layout, "pinned") == digest
    assert "Successfully verified" in verify(layout, ":pinned", notation_env)
    # Signed again: both signatures are kept side by side, and the new image verifies.
    tool("notation", "sign", "--oci-layout", f"{layout}@{new}", env=notation_env)
    assert len(signatures(layout)) == 2
    assert "Successfully verified" in verify(layout, ":latest", notation_env)


# ---- crane --------------------------------------------------------------------------------------

def _push_busybox_platforms(registry: Registry, repo: str, *, docker_list: bool) -> str:
    """busybox for linux/amd64 and (relabelled) linux/arm64 behind one index in the registry."""
    amd64, arm64, multi = (registry.ref(repo, t) for t in ("amd64", "arm64", "multi"))
    tool("crane", "push", "--insecure", str(BUSYBOX), amd64)
    tool("crane", "mutate", "--insecure", amd64, "--set-platform", "linux/arm64", "-t", arm64)
    extra = ["--docker-empty-base"] if docker_list else []
    tool("crane", "index", "append", "--insecure", *extra, "-m", amd64, "-m", arm64, "-t", multi)
    return multi


def test_crane_single_platform_layout_is_a_run_image(run: Run, build: Build, registry: Registry) -> None:
    tool("crane", "push", "--insecure", str(BUSYBOX), registry.ref("crane/busybox"))
    pulled = build.image_dir("crane-busybox")
    tool("crane", "pull", "--insecure", "--format=oci", registry.ref("crane/busybox"), str(pulled))
    analyzed = build.analyze(run, run_image="crane-busybox")
    assert analyzed["run-image"]["reference"] == f"{pulled}@{BUSYBOX_MANIFEST}"  # type: ignore[index]
    build.export(run)
    image = Layout(build.image_dir()).image()
    assert image.manifest.layers[0].digest == Layout(BUSYBOX).image().manifest.layers[0].digest


@pytest.mark.parametrize("docker_list", [False, True], ids=["oci-index", "docker-manifest-list"])
def test_crane_multi_platform_layout_is_a_run_image(run: Run, build: Build, registry: Registry,
                                                    docker_list: bool) -> None:
    multi = _push_busybox_platforms(registry, f"crane/multi-{int(docker_list)}", docker_list=docker_list)
    pulled = build.image_dir("crane-multi")
    tool("crane", "pull", "--insecure", "--format=oci", multi, str(pulled))
    analyzed = build.analyze(run, run_image="crane-multi")
    run_image = analyzed["run-image"]
    assert isinstance(run_image, dict)
    assert run_image["reference"] == f"{pulled}@{BUSYBOX_MANIFEST}"
    assert run_image["target"] == {"os": "linux", "arch": "amd64"}
    build.export(run)
    assert Layout(build.image_dir()).image().config.dump()["architecture"] == "amd64"


@pytest.mark.parametrize("multi_platform", [False, True], ids=["single", "multi-platform"])
def test_crane_layout_is_a_previous_image(run: Run, build: Build, registry: Registry, multi_platform: bool) -> None:
    build.build(run)
    ours = build.image_dir()
    digest = tagged(ours)
    pushed = registry.ref(f"crane/app-{int(multi_platform)}", "amd64")
    tool("crane", "push", "--insecure", str(ours), pushed)
    if multi_platform:
        arm64 = registry.ref(f"crane/app-{int(multi_platform)}", "arm64")
        tool("crane", "mutate", "--insecure", pushed, "--set-platform", "linux/arm64", "-t", arm64)
        tool("crane", "index", "append", "--insecure", "-m", pushed, "-m", arm64, "-t",
             registry.ref(f"crane/app-{int(multi_platform)}", "multi"))
        pushed = registry.ref(f"crane/app-{int(multi_platform)}", "multi")
    shutil.rmtree(ours)
    tool("crane", "pull", "--insecure", "--format=oci", pushed, str(ours))
    analyzed = build.analyze(run)
    assert analyzed["image"] == {"reference": f"{ours}@{digest}"}
    out = build.export(run)
    assert "Adding layer" not in out, out
    assert "Reusing layer 'acme/one:run'" in out
    assert tagged(ours) == digest


# ---- the launch SBOM as referrers (-sbom-referrer, beyond upstream) -----------------------------

CDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"


def referrers(*args: str) -> dict[str, str]:
    """artifact digest -> artifactType of the direct referrers ``oras discover`` lists."""
    out = json.loads(tool("oras", "discover", "--format", "json", "--depth", "1", *args))
    return {d["digest"]: d["artifactType"] for d in out.get("referrers") or []}


def sbom_layer_files(layout: Path, tag: str = "latest") -> dict[str, bytes]:
    """``<path under sbom/launch>`` -> bytes of the files in the image's SBOM layer."""
    image = Layout(layout).image(tag)
    history = image.config.history or []
    [index] = [i for i, h in enumerate(history) if h.created_by == "Software Bill-of-Materials"]
    blob = layout / "blobs" / "sha256" / image.manifest.layers[index].digest.split(":")[1]
    with tarfile.open(blob, "r:gz") as tar:
        return {member.name.split("/sbom/launch/", 1)[1]: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers() if member.isfile() and "/sbom/launch/" in member.name}


def pulled(tmp_path: Path, *args: str) -> dict[str, bytes]:
    out = tmp_path / f"pulled-{len(list(tmp_path.glob('pulled-*')))}"
    tool("oras", "pull", *args, "-o", str(out))
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_sbom_referrers_in_the_layout(run: Run, build: Build, tmp_path: Path) -> None:
    build.analyze(run)
    build.export(run)
    layout = build.image_dir()
    plain_index = (layout / "index.json").read_bytes()
    digest = tagged(layout)
    assert referrers("--oci-layout", f"{layout}:latest") == {}
    out = build.export(run, "-sbom-referrer", "my-app")
    assert tagged(layout) == digest  # the image is the same with or without the flag
    found = referrers("--oci-layout", f"{layout}:latest")
    assert sorted(found.values()) == sorted([CDX, SPDX])
    for artifact in found:
        assert f"Saving SBOM referrer {layout}@{artifact}..." in out
    # Each artifact names the image as its subject and holds the bytes that are in the SBOM layer.
    in_layer = sbom_layer_files(layout)
    assert "acme_one/run/sbom.cdx.json" in in_layer
    for artifact, kind in found.items():
        manifest = json.loads(tool("oras", "manifest", "fetch", "--oci-layout", f"{layout}@{artifact}"))
        assert manifest["subject"]["digest"] == digest
        assert manifest["artifactType"] == kind
        files = pulled(tmp_path, "--oci-layout", f"{layout}@{artifact}")
        ext = "cdx.json" if kind == CDX else "spdx.json"
        assert files == {k: v for k, v in in_layer.items() if k.endswith(ext)}
        assert files
    # Reproducible: the same build again changes nothing; another tag rebuilt keeps them.
    index = (layout / "index.json").read_bytes()
    build.export(run, "-sbom-referrer", "my-app")
    assert (layout / "index.json").read_bytes() == index
    build.export(run, "my-app")  # without the flag: the tag stays, the referrers stay
    assert referrers("--oci-layout", f"{layout}:latest") == found
    # A changed app: the new image gets its own referrers; the old image's stay, as signatures do.
    (build.app / "hello.txt").write_text("changed\n")
    build.export(run, "-sbom-referrer", "my-app")
    new = referrers("--oci-layout", f"{layout}:latest")
    assert sorted(new.values()) == sorted([CDX, SPDX]) and not new.keys() & found.keys()
    listed = {d["digest"] for d in json.loads((layout / "index.json").read_text())["manifests"]}
    assert found.keys() | new.keys() <= listed
    for artifact in found:
        manifest = json.loads(tool("oras", "manifest", "fetch", "--oci-layout", f"{layout}@{artifact}"))
        assert manifest["subject"]["digest"] == digest
        assert (layout / "blobs" / "sha256" / digest.split(":")[1]).is_file()
    # Without the flag the layout holds the tag alone, as before.
    assert json.loads(plain_index)["manifests"][0]["digest"] == digest
    assert len(json.loads(plain_index)["manifests"]) == 1


def test_sbom_referrers_are_reproducible(run: Run, build: Build) -> None:
    """The app image exported again from the same inputs into a fresh layout: the same artifacts."""
    build.analyze(run)
    build.export(run, "-sbom-referrer", "my-app")
    layout = build.image_dir()
    one = referrers("--oci-layout", f"{layout}:latest")
    index = (layout / "index.json").read_bytes()
    shutil.rmtree(layout)
    build.analyze(run)
    build.export(run, "-sbom-referrer", "my-app", "my-app:v2")
    assert referrers("--oci-layout", f"{layout}:latest") == one
    assert (layout / "index.json").read_bytes() == index
    # The extra tag's layout gets them too.
    assert referrers("--oci-layout", f"{build.image_dir(tag='v2')}:v2") == one


def test_sbom_referrers_in_the_registry_with_the_creator(run: Run, registry: Registry, tmp_path: Path) -> None:
    run_image = push_busybox(registry.host)
    target = f"{registry.host}/sbom-referrers/app"
    res = run("creator", *sample_build_args(tmp_path), "-insecure-registry", registry.host, "-run-image", run_image,
              target, env=base_env(CNB_SBOM_REFERRER="true"))
    assert res.returncode == 0, res.stdout
    layers = tmp_path / "layers"
    digest = tomllib.loads((layers / "report.toml").read_text())["image"]["digest"]
    found = referrers("--plain-http", f"{target}:latest")
    assert sorted(found.values()) == sorted([CDX, SPDX])
    on_disk = {str(p.relative_to(layers / "sbom" / "launch")): p.read_bytes()
               for p in (layers / "sbom" / "launch").rglob("sbom.*.json")}
    for artifact, kind in found.items():
        manifest = json.loads(tool("oras", "manifest", "fetch", "--plain-http", f"{target}@{artifact}"))
        assert manifest["subject"]["digest"] == digest
        files = pulled(tmp_path, "--plain-http", f"{target}@{artifact}")
        ext = "cdx.json" if kind == CDX else "spdx.json"
        assert files and files == {k: v for k, v in on_disk.items() if k.endswith(ext)}
    # No referrers API in this registry: the fallback tag lists them.
    fallback = json.loads(tool("oras", "manifest", "fetch", "--plain-http", f"{target}:{digest.replace(':', '-')}"))
    assert {d["digest"] for d in fallback["manifests"]} == set(found)


@pytest.mark.parametrize("program", ["exporter", "creator"])
def test_sbom_referrer_with_the_daemon_is_an_input_error(run: Run, tmp_path: Path, program: str) -> None:
    res = run(program, "-daemon", "-sbom-referrer", "-layers", str(tmp_path), "-run-image", "busybox", "my-app",
              env=base_env(DOCKER_HOST="unix:///nonexistent.sock"))
    assert res.returncode == 3, res.stdout
    assert res.stdout.strip().splitlines()[-1] == ("ERROR: -sbom-referrer needs -oci or a registry: a Docker "
                                                   "daemon keeps no OCI referrers")
