"""The exporter through its console script: analyzer + exporter on the busybox fixture with a
hand-made layers dir, checked with skopeo, umoci, oci-image-tool and a real dockerd."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from tests.conftest import BUSYBOX_LAYER, LAYOUT_REPO, Run, base_env, require_tool

WEB_CMD = 'echo "web says $GREETING"; greet'


@dataclass
class Workspace:
    """A platform's view: layout root, layers dir and app dir."""

    root: Path
    oci: Path
    layers: Path
    app: Path

    def analyze(self, run: Run, *extra: str, image: str = "my-app", env: dict[str, str] | None = None) -> str:
        res = run("analyzer", "-oci", "-oci-dir", str(self.oci), "-layers", str(self.layers),
                  "-run-image", "busybox", *extra, image, env=env)
        assert res.returncode == 0, res.stdout
        return res.stdout

    def export(self, run: Run, *extra: str, image: str = "my-app", env: dict[str, str] | None = None,
               code: int = 0) -> str:
        res = run("exporter", "-oci", "-oci-dir", str(self.oci), "-layers", str(self.layers),
                  "-app", str(self.app), *extra, image, env=env)
        assert res.returncode == code, res.stdout
        assert "Traceback" not in res.stdout
        return res.stdout

    def image_dir(self, name: str = "my-app", tag: str = "latest") -> Path:
        return self.oci / "index.docker.io" / "library" / name / tag

    def manifest(self, name: str = "my-app") -> tuple[str, dict[str, object], dict[str, object]]:
        image = Layout(self.image_dir(name)).image()
        return image.manifest_digest, image.manifest.dump(), image.config.dump()


def make_workspace(base: Path) -> Workspace:
    """One buildpack with a launch, a build-only and a cache-only layer, a `web` process, an app."""
    oci = base / "oci"
    shutil.copytree(LAYOUT_REPO, oci)
    layers, app = base / "layers", base / "app"
    bp = layers / "acme_bp"
    (bp / "launch-layer" / "bin").mkdir(parents=True)
    (bp / "launch-layer" / "env.launch").mkdir()
    (bp / "build-layer").mkdir()
    (bp / "cache-layer").mkdir()
    (layers / "config").mkdir()
    (bp / "launch-layer.toml").write_text('[types]\nlaunch = true\n[metadata]\nversion = "1.0"\n')
    (bp / "build-layer.toml").write_text("[types]\nbuild = true\n")
    (bp / "cache-layer.toml").write_text("[types]\ncache = true\n")
    greet = bp / "launch-layer" / "bin" / "greet"
    greet.write_text("#!/bin/sh\necho greet from the launch layer\n")
    greet.chmod(0o755)
    (bp / "launch-layer" / "env.launch" / "GREETING").write_text("hello")
    (bp / "build-layer" / "build-only.txt").write_text("build\n")
    (bp / "cache-layer" / "cache-only.txt").write_text("cache\n")
    (bp / "store.toml").write_text('[metadata]\nrun = 1\n')
    (layers / "group.toml").write_text('[[group]]\nid = "acme/bp"\nversion = "1.0.0"\napi = "0.10"\n')
    (layers / "config" / "metadata.toml").write_text(
        'buildpack-default-process-type = "web"\n'
        '[[buildpacks]]\nid = "acme/bp"\nversion = "1.0.0"\napi = "0.10"\n'
        f'[[processes]]\ntype = "web"\ncommand = ["sh", "-c", {json.dumps(WEB_CMD)}]\nargs = []\n'
        'direct = true\nbuildpack-id = "acme/bp"\n'
        '[[processes]]\ntype = "other"\ncommand = ["echo", "other process"]\nargs = []\n'
        'direct = true\nbuildpack-id = "acme/bp"\n'
        '[[labels]]\nkey = "org.example.team"\nvalue = "platform"\n')
    (app / "sub").mkdir(parents=True)
    (app / "hello.txt").write_text("hello app\n")
    (app / "sub" / "data.txt").write_text("data\n")
    (app / "link").symlink_to("hello.txt")
    return Workspace(base, oci, layers, app)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def blobs(layout_dir: Path) -> set[str]:
    return {p.name for p in (layout_dir / "blobs" / "sha256").iterdir() if not p.name.startswith(".")}


def test_full_run_image_validates_and_unpacks(run: Run, ws: Workspace, tmp_path: Path) -> None:
    ws.analyze(run)
    out = ws.export(run)
    assert "Adding layer 'acme/bp:launch-layer'" in out
    assert "Saving " + str(ws.image_dir()) + "..." in out
    image_dir = ws.image_dir()
    res = subprocess.run([require_tool("oci-image-tool"), "validate", "--type", "image", str(image_dir)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    skopeo = require_tool("skopeo")
    inspect = json.loads(subprocess.run([skopeo, "inspect", f"oci:{image_dir}:latest"], check=True,
                                        capture_output=True, text=True).stdout)
    digest, manifest, config = ws.manifest()
    assert inspect["Digest"] == digest
    copy = tmp_path / "copy"
    subprocess.run([skopeo, "copy", f"oci:{image_dir}:latest", f"oci:{copy}:latest"], check=True,
                   capture_output=True)
    assert Layout(copy).image("latest").manifest_digest == digest
    bundle = tmp_path / "bundle"
    subprocess.run([require_tool("umoci"), "unpack", "--image", f"{image_dir}:latest", str(bundle)], check=True,
                   capture_output=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file()
    launch = rootfs / str(ws.layers).lstrip("/") / "acme_bp"
    assert (launch / "launch-layer" / "bin" / "greet").is_file()
    assert not (launch / "build-layer").exists()
    assert not (launch / "cache-layer").exists()
    app = rootfs / str(ws.app).lstrip("/")
    assert (app / "hello.txt").read_text() == "hello app\n"
    assert os.readlink(app / "link") == "hello.txt"
    assert (rootfs / "cnb" / "lifecycle" / "launcher").is_file()
    assert os.readlink(rootfs / "cnb" / "process" / "web") == "/cnb/lifecycle/launcher"
    assert (rootfs / str(ws.layers).lstrip("/") / "config" / "metadata.toml").is_file()
    cfg = config["config"]
    assert isinstance(cfg, dict)
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["CNB_LAYERS_DIR"] == str(ws.layers)
    assert env["CNB_APP_DIR"] == str(ws.app)
    assert env["CNB_PLATFORM_API"] == "0.15"
    assert env["PATH"].startswith("/cnb/process:/cnb/lifecycle:")
    assert cfg["WorkingDir"] == str(ws.app)
    assert cfg["Entrypoint"] == ["/cnb/process/web"]
    labels = cfg["Labels"]
    lifecycle_label = json.loads(labels["io.buildpacks.lifecycle.metadata"])
    layer_meta = lifecycle_label["buildpacks"][0]["layers"]
    assert set(layer_meta) == {"launch-layer"}
    assert layer_meta["launch-layer"]["data"] == {"version": "1.0"}
    assert lifecycle_label["buildpacks"][0]["store"] == {"metadata": {"run": 1}}
    top = "sha256:40cf597a9181e86497f4121c604f9f0ab208950a98ca21db883f26b0a548a2eb"
    assert lifecycle_label["runImage"]["topLayer"] == top
    build_label = json.loads(labels["io.buildpacks.build.metadata"])
    assert [p["type"] for p in build_label["processes"]] == ["web", "other"]
    assert labels["io.buildpacks.project.metadata"] == "{}"
    assert labels["org.example.team"] == "platform"
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    layers = manifest["layers"]
    assert isinstance(layers, list)
    assert all(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" for layer in layers)
    assert manifest["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    index = json.loads((image_dir / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    history = [h.get("created_by") for h in config["history"]]  # type: ignore[union-attr]
    assert history[-4:] == ["Application Layer", "Buildpacks Application Launcher", "Buildpacks Launcher Config",
                            "Buildpacks Process Types"]


def test_sparse_run_image(run: Run, ws: Workspace) -> None:
    run_dir = ws.oci / "index.docker.io" / "library" / "busybox" / "latest"
    (run_dir / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]).unlink()
    ws.analyze(run)
    ws.export(run)
    _digest, manifest, _config = ws.manifest()
    layers = manifest["layers"]
    assert isinstance(layers, list)
    assert layers[0]["digest"] == BUSYBOX_LAYER
    assert layers[0]["size"] == 772999
    present = blobs(ws.image_dir())
    assert BUSYBOX_LAYER.split(":")[1] not in present
    for layer in layers[1:]:
        assert layer["digest"].split(":")[1] in present


def test_reproducible_and_source_date_epoch(run: Run, ws: Workspace) -> None:
    ws.analyze(run, "-previous-image", "none-such")
    ws.export(run)
    first, _m, first_config = ws.manifest()
    shutil.rmtree(ws.oci / "index.docker.io" / "library" / "my-app")
    for path in [ws.app, ws.layers, *ws.app.rglob("*"), *ws.layers.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, (1_700_000_000, 1_700_000_000))
    time.sleep(1.1)  # a different clock for the second run
    ws.export(run)
    second, _m, _c = ws.manifest()
    assert first == second
    shutil.rmtree(ws.oci / "index.docker.io" / "library" / "my-app")
    ws.export(run, env=base_env(SOURCE_DATE_EPOCH="1700000000"))
    third, _m, third_config = ws.manifest()
    assert third != first
    assert third_config["created"] == "2023-11-14T22:13:20Z"
    for row in third_config["history"]:  # type: ignore[union-attr]
        assert row["created"] == "2023-11-14T22:13:20Z"
    strip = {k: v for k, v in third_config.items() if k not in ("created", "history")}
    assert strip == {k: v for k, v in first_config.items() if k not in ("created", "history")}
    assert [h.get("created_by") for h in third_config["history"]] == \
        [h.get("created_by") for h in first_config["history"]]  # type: ignore[union-attr]


def test_second_export_reuses_unchanged_layers(run: Run, ws: Workspace) -> None:
    ws.analyze(run)
    ws.export(run)
    first_digest, _first_manifest, first_config = ws.manifest()
    before = blobs(ws.image_dir())
    (ws.app / "hello.txt").write_text("hello again\n")
    out = ws.analyze(run)
    assert "not found" not in out
    analyzed = tomllib.loads((ws.layers / "analyzed.toml").read_text())
    assert analyzed["image"]["reference"].endswith(first_digest)
    out = ws.export(run)
    assert "Reusing layer 'acme/bp:launch-layer'" in out
    assert "Reusing layer 'buildpacksio/lifecycle:launcher'" in out
    assert "Reusing layer 'buildpacksio/lifecycle:config'" in out
    assert "Reusing layer 'buildpacksio/lifecycle:process-types'" in out
    assert "Added 1/1 app layer(s)" in out
    digest, _manifest, config = ws.manifest()
    assert digest != first_digest
    old_ids = first_config["rootfs"]["diff_ids"]  # type: ignore[index]
    new_ids = config["rootfs"]["diff_ids"]  # type: ignore[index]
    changed = [i for i, (a, b) in enumerate(zip(old_ids, new_ids, strict=True)) if a != b]
    assert len(changed) == 1  # only the app layer
    new_blobs = blobs(ws.image_dir()) - before
    assert len(new_blobs) == 3  # app layer, config, manifest


def test_extra_tags_and_report(run: Run, ws: Workspace) -> None:
    ws.analyze(run)
    res = run("exporter", "-oci", "-oci-dir", str(ws.oci), "-layers", str(ws.layers), "-app", str(ws.app),
              "my-app", "my-app:v2", "example.com/team/app:1.0")
    assert res.returncode == 0, res.stdout
    report = tomllib.loads((ws.layers / "report.toml").read_text())["image"]
    digest = ws.manifest()[0]
    extra1 = ws.image_dir("my-app", "v2")
    extra2 = ws.oci / "example.com" / "team" / "app" / "1.0"
    assert report["tags"] == [str(ws.image_dir()), str(extra1), str(extra2)]
    assert report["digest"] == digest
    assert report["manifest-size"] == (ws.image_dir() / "blobs" / "sha256" / digest.split(":")[1]).stat().st_size
    for path, tag in ((extra1, "v2"), (extra2, "1.0")):
        image = Layout(path).image(tag)
        assert image.manifest_digest == digest
        assert image.descriptor.ref_name == tag


@pytest.mark.parametrize("partial", [False, True])
def test_rfc_literal_example(run: Run, tmp_path: Path, partial: bool) -> None:
    ws = make_workspace(tmp_path)
    example = ws.oci / "cnb" / "my-full-stack-run"
    shutil.copytree(ws.oci / "index.docker.io" / "library" / "busybox" / "latest", example)
    index = json.loads((example / "index.json").read_text())
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "bionic"}
    (example / "index.json").write_text(json.dumps(index))
    if partial:
        (example / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]).unlink()
    res = run("exporter", "-oci", "-oci-dir", str(ws.oci), "-layers", str(ws.layers), "-app", str(ws.app),
              "-run-image", "cnb/my-full-stack-run:bionic", "my-app-image")
    assert res.returncode == 0, res.stdout
    assert "No analyzed metadata found" in res.stdout
    image = Layout(ws.image_dir("my-app-image")).image()
    assert image.manifest.layers[0].digest == BUSYBOX_LAYER
    assert (BUSYBOX_LAYER in image.missing) is partial


def test_concurrent_writers_keep_both_tags(tmp_path: Path) -> None:
    target = tmp_path / "shared-layout"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lifecycle.image.layout import Layout\n"
        "from lifecycle.image import model as m\n"
        "layout = Layout(Path(sys.argv[1]))\n"
        "for i in range(40):\n"
        "    desc = layout.put_blob(f'{sys.argv[2]}-{i}'.encode(), m.OCI_MANIFEST)\n"
        "    layout.set_tag(desc, f'{sys.argv[2]}-{i % 5}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), name]) for name in ("alpha", "beta")]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    names = sorted(d["annotations"]["org.opencontainers.image.ref.name"]
                   for d in json.loads((target / "index.json").read_text())["manifests"])
    assert names == sorted([f"alpha-{i}" for i in range(5)] + [f"beta-{i}" for i in range(5)])


def test_killed_export_leaves_previous_layout_valid(run: Run, ws: Workspace) -> None:
    ws.analyze(run)
    ws.export(run)
    digest = ws.manifest()[0]
    index_before = (ws.image_dir() / "index.json").read_bytes()
    with open(ws.app / "big.bin", "wb") as f:
        f.write(os.urandom(64 << 20))
    exe = shutil.which("exporter", path=base_env()["PATH"])
    assert exe
    proc = subprocess.Popen([exe, "-oci", "-oci-dir", str(ws.oci), "-layers", str(ws.layers), "-app", str(ws.app),
                             "my-app"], env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blob_dir = ws.image_dir() / "blobs" / "sha256"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".tmp-") for p in blob_dir.iterdir()):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ws.image_dir() / "index.json").read_bytes() == index_before
    assert Layout(ws.image_dir()).image().manifest_digest == digest
    res = subprocess.run([require_tool("oci-image-tool"), "validate", "--type", "image", str(ws.image_dir())],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _tree_state(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case,code,message", [
    ("no-analyzed", 3, "ERROR: run image not found in analyzed metadata"),
    ("bad-analyzed", 3, "ERROR: failed to read analyzed metadata"),
    ("top-level-flags", 62, "ERROR: failed to export: failed to parse metadata for layers '[acme/bp:launch-layer]'"),
    ("slash-type", 62, "ERROR: failed to export: invalid process type 'we/b'"),
    ("unknown-process-type", 62, "ERROR: failed to export: determining entrypoint: tried to set nope to default"),
    ("outside-symlink", 62, "ERROR: failed to export: app directory contains a symlink pointing outside it"),
])
def test_bad_inputs(run: Run, ws: Workspace, case: str, code: int, message: str) -> None:
    ws.analyze(run)
    ws.export(run)
    before = _tree_state(ws.oci)
    extra: list[str] = []
    if case == "no-analyzed":
        (ws.layers / "analyzed.toml").unlink()
    elif case == "bad-analyzed":
        (ws.layers / "analyzed.toml").write_text("[run-image\nreference = 1")
    elif case == "top-level-flags":
        (ws.layers / "acme_bp" / "launch-layer.toml").write_text("launch = true\n")
    elif case == "slash-type":
        meta = ws.layers / "config" / "metadata.toml"
        meta.write_text(meta.read_text().replace('type = "other"', 'type = "we/b"'))
    elif case == "unknown-process-type":
        extra = ["-process-type", "nope"]
    elif case == "outside-symlink":
        (ws.app / "escape").symlink_to("../../../etc/passwd")
    out = ws.export(run, *extra, code=code)
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, out
    assert errors[0].startswith(message), out
    assert _tree_state(ws.oci) == before


@pytest.mark.dockerd
def test_runs_under_dockerd(run: Run, ws: Workspace, dockerd: object) -> None:
    ws.analyze(run)
    ws.export(run)
    skopeo = require_tool("skopeo")
    host = dockerd.host  # type: ignore[attr-defined]
    name = f"exported-{os.getpid()}:latest"
    subprocess.run([skopeo, "copy", "--dest-daemon-host", host, f"oci:{ws.image_dir()}:latest",
                    f"docker-daemon:{name}"], check=True, capture_output=True)
    res = dockerd.run("run", "--rm", "--network", "none", name, check=False)  # type: ignore[attr-defined]
    assert res.returncode == 0, res.stdout + res.stderr
    assert "web says hello" in res.stdout
    assert "greet from the launch layer" in res.stdout
    res = dockerd.run("run", "--rm", "--network", "none", "--entrypoint", "/cnb/process/other",  # type: ignore[attr-defined]
                      name, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "other process"


def test_launch_layer_with_only_toml_is_reused_or_fails(run: Run, ws: Workspace) -> None:
    ws.analyze(run)
    ws.export(run)
    first_ids = ws.manifest()[2]["rootfs"]["diff_ids"]  # type: ignore[index]
    shutil.rmtree(ws.layers / "acme_bp" / "launch-layer")
    ws.analyze(run)
    out = ws.export(run)
    assert "Reusing layer 'acme/bp:launch-layer'" in out
    assert ws.manifest()[2]["rootfs"]["diff_ids"] == first_ids  # type: ignore[index]
    ws.analyze(run, "-previous-image", "no-such-image")
    out = ws.export(run, code=62)
    assert ("ERROR: failed to export: cannot reuse 'acme/bp:launch-layer', previous image has no metadata "
            "for layer 'acme/bp:launch-layer'") in out


def test_reuse_from_sparse_previous_image(run: Run, ws: Workspace) -> None:
    ws.analyze(run)
    ws.export(run)
    _digest, manifest, config = ws.manifest()
    previous = ws.image_dir("prev-app")
    shutil.copytree(ws.image_dir(), previous)
    launch_blob = manifest["layers"][1]["digest"]  # type: ignore[index]
    (previous / "blobs" / "sha256" / launch_blob.split(":")[1]).unlink()
    ws.analyze(run, "-previous-image", "prev-app", image="new-app")
    out = ws.export(run, image="new-app")
    assert "Reusing layer 'acme/bp:launch-layer'" in out
    _d, new_manifest, new_config = ws.manifest("new-app")
    assert new_config["rootfs"]["diff_ids"] == config["rootfs"]["diff_ids"]  # type: ignore[index]
    assert new_manifest["layers"][1]["digest"] == launch_blob  # type: ignore[index]
    present = blobs(ws.image_dir("new-app"))
    assert launch_blob.split(":")[1] not in present  # listed, never fabricated (D4)
    for layer in new_manifest["layers"][2:]:  # type: ignore[index]
        assert layer["digest"].split(":")[1] in present


def test_parallel_export_writes_image_and_cache(run: Run, ws: Workspace, tmp_path: Path) -> None:
    ws.analyze(run)
    serial_cache, parallel_cache = tmp_path / "cache-serial", tmp_path / "cache-parallel"
    serial_cache.mkdir()
    parallel_cache.mkdir()
    ws.export(run, "-cache-dir", str(serial_cache))
    serial_digest = ws.manifest()[0]
    shutil.rmtree(ws.image_dir())
    out = ws.export(run, "-cache-dir", str(parallel_cache), env=base_env(CNB_PARALLEL_EXPORT="true"))
    assert "Adding cache layer 'acme/bp:cache-layer'" in out
    assert ws.manifest()[0] == serial_digest
    committed = sorted(p.name for p in (parallel_cache / "committed").iterdir())
    assert committed == sorted(p.name for p in (serial_cache / "committed").iterdir())
    assert "io.buildpacks.lifecycle.cache.metadata" in committed
    out = ws.export(run, "-parallel")
    assert "Parallel export has been enabled, but it has not taken effect because no cache has been specified." in out
