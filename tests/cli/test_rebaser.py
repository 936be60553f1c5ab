"""The rebaser through its console script: the sample workspace exported onto busybox (run image A),
then rebased onto run image B (busybox's layer plus one small layer, other base labels), checked
with oci-image-tool, umoci and skopeo; registry mode against a real docker-registry."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.layers.blob import build_layer
from lifecycle.layers.tar import Entry
from tests.cli.test_exporter import Workspace, _tree_state, blobs, make_workspace
from tests.conftest import BUSYBOX, BUSYBOX_LAYER, REPO, Run, base_env, require_tool
from tests.support.sample import push_busybox, sample_build_args
from tests.support.services import Registry

LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"
BUSYBOX_TOP = "sha256:40cf597a9181e86497f4121c604f9f0ab208950a98ca21db883f26b0a548a2eb"
B_FILE = "etc/run-b-release"
B_LABELS = {"io.buildpacks.base.id": "example/run-b", "io.buildpacks.stack.id": "example.stack"}


def make_run_image(target: Path, tag: str, work: Path, *, labels: dict[str, str] | None = None,
                   architecture: str | None = None) -> tuple[str, str]:
    """Run image B in the layout ``target`` under ``tag``: busybox's layer (hard-linked) plus one
    layer holding ``/etc/run-b-release``. Returns (manifest digest, top diffID)."""
    source = Layout(BUSYBOX).image()
    layout = Layout(target)
    layout.init()
    (target / "index.json").unlink(missing_ok=True)  # the layout now holds B alone
    base_desc = source.manifest.layers[0]
    assert layout.add_blob_from(BUSYBOX / "blobs" / "sha256" / base_desc.digest.split(":")[1], base_desc)
    release = work / f"run-b-release-{tag}"
    release.write_text("run image B\n")
    layer = build_layer([Entry("/etc", "dir", 0o755, 0, 0),
                         Entry(f"/{B_FILE}", "file", 0o644, 0, 0, source=release, size=release.stat().st_size)],
                        layout)
    config = source.config.dump()
    config["config"]["Labels"] = dict(B_LABELS if labels is None else labels)
    if architecture:
        config["architecture"] = architecture
    config["history"] = [*config["history"], {"created": "2024-01-01T00:00:00Z", "created_by": "run image B"}]
    config["rootfs"]["diff_ids"] = [*source.diff_ids, layer.diff_id]
    config_desc = layout.put_blob(m.canonical_json(config), m.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": config_desc.dump(),
                "layers": [{**base_desc.dump(), "mediaType": m.OCI_LAYER_GZIP}, layer.descriptor.dump()]}
    manifest_desc = layout.put_blob(m.canonical_json(manifest), m.OCI_MANIFEST)
    layout.set_tag(manifest_desc, tag)
    return manifest_desc.digest, layer.diff_id


def reconfig(image_dir: Path, change: Callable[[dict[str, Any]], None], tag: str = "latest") -> str:
    """Rewrite the image's config with ``change`` (a new config and manifest, same layers)."""
    layout = Layout(image_dir)
    image = layout.image(tag)
    config = image.config.dump()
    change(config)
    config_desc = layout.put_blob(m.canonical_json(config), m.OCI_CONFIG)
    manifest = image.manifest.dump()
    manifest["config"] = config_desc.dump()
    manifest_desc = layout.put_blob(m.canonical_json(manifest), m.OCI_MANIFEST)
    layout.set_tag(manifest_desc, tag)
    return manifest_desc.digest


def relabel(image_dir: Path, change: Callable[[dict[str, str]], None]) -> str:
    """Rewrite the image's config labels with ``change``."""
    return reconfig(image_dir, lambda config: change(config["config"]["Labels"]))


def legacy(config: dict[str, Any]) -> None:
    """An app image from before Platform API 0.12 (no CNB_PLATFORM_API in its env)."""
    config["config"]["Env"] = [e for e in config["config"]["Env"] if not e.startswith("CNB_PLATFORM_API=")]


def lifecycle_label(config: dict[str, Any]) -> dict[str, Any]:
    label: dict[str, Any] = json.loads(config["config"]["Labels"][LIFECYCLE_LABEL])
    return label


class Rebaser:
    """``rebaser -oci`` on a workspace's layout root, with the report in the layers dir."""

    def __init__(self, run: Run, ws: Workspace) -> None:
        self.run_ = run
        self.ws = ws
        self.report = ws.root / "rebase-report.toml"

    def __call__(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
        res = self.run_("rebaser", "-oci", "-oci-dir", str(self.ws.oci), "-report", str(self.report), *args,
                        env=env)
        assert res.returncode == code, res.stdout
        assert "Traceback" not in res.stdout
        if code:
            errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR:")]
            assert len(errors) == 1, res.stdout
        return res.stdout


@pytest.fixture
def ws(run: Run, tmp_path: Path) -> Workspace:
    """The sample workspace, exported onto busybox (run image A) as my-app."""
    ws = make_workspace(tmp_path)
    ws.analyze(run)
    ws.export(run)
    return ws


@pytest.fixture
def rebaser(run: Run, ws: Workspace) -> Rebaser:
    return Rebaser(run, ws)


def busybox_dir(ws: Workspace) -> Path:
    return ws.oci / "index.docker.io" / "library" / "busybox" / "latest"


def test_rebase_onto_updated_run_image(ws: Workspace, rebaser: Rebaser, tmp_path: Path) -> None:
    digest_a, manifest_a, config_a = ws.manifest()
    # The run image's name now holds B (as after `skopeo copy` of a new busybox): the rebaser's
    # default run image is the name the app image's label records.
    digest_b, top_b = make_run_image(busybox_dir(ws), "latest", tmp_path)
    before = blobs(ws.image_dir())
    out = rebaser("my-app")
    assert f"Saving {ws.image_dir()}..." in out
    digest, manifest, config = ws.manifest()
    assert digest != digest_a
    assert f"*** Images ({digest}):\n      {ws.image_dir()}\n" in out
    image_dir = ws.image_dir()
    res = subprocess.run([require_tool("oci-image-tool"), "validate", "--type", "image", str(image_dir)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    bundle = tmp_path / "bundle"
    subprocess.run([require_tool("umoci"), "unpack", "--image", f"{image_dir}:latest", str(bundle)], check=True,
                   capture_output=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / B_FILE).read_text() == "run image B\n"
    assert (rootfs / "bin" / "busybox").is_file()
    assert (rootfs / str(ws.layers).lstrip("/") / "acme_bp" / "launch-layer" / "bin" / "greet").is_file()
    assert (rootfs / str(ws.app).lstrip("/") / "hello.txt").read_text() == "hello app\n"
    assert os.readlink(rootfs / "cnb" / "process" / "web") == "/cnb/lifecycle/launcher"
    # Layers: B's, then the app's own, same diffIDs and same blobs (nothing rebuilt or recompressed).
    ids_a, ids = config_a["rootfs"]["diff_ids"], config["rootfs"]["diff_ids"]  # type: ignore[index]
    assert ids[:2] == [BUSYBOX_TOP, top_b]
    assert ids[2:] == ids_a[1:]
    layers_a, layers = manifest_a["layers"], manifest["layers"]
    assert isinstance(layers_a, list) and isinstance(layers, list)
    assert layers[2:] == layers_a[1:]
    assert layers[0]["digest"] == BUSYBOX_LAYER
    assert all(layer["mediaType"] == m.OCI_LAYER_GZIP for layer in layers)
    assert manifest["annotations"] == {m.REF_NAME: "latest"}
    config_digest = manifest["config"]["digest"]  # type: ignore[index]
    new_blobs = {layers[1]["digest"], config_digest, digest}  # B's own layer, config, manifest
    assert blobs(image_dir) - before == {d.split(":")[1] for d in new_blobs}
    # Config: the app's, on B.
    labels = config["config"]["Labels"]  # type: ignore[index]
    for key, value in B_LABELS.items():
        assert labels[key] == value
    label = lifecycle_label(config)
    assert label["runImage"]["topLayer"] == top_b
    assert label["runImage"]["reference"] == f"{busybox_dir(ws)}@{digest_b}"
    assert label["runImage"]["image"] == str(busybox_dir(ws))
    assert {k: v for k, v in label.items() if k != "runImage"} == \
        {k: v for k, v in lifecycle_label(config_a).items() if k != "runImage"}
    for key in ("io.buildpacks.build.metadata", "io.buildpacks.project.metadata", "org.example.team"):
        assert labels[key] == config_a["config"]["Labels"][key]  # type: ignore[index]
    for key in ("Env", "Entrypoint", "WorkingDir"):
        assert config["config"][key] == config_a["config"][key]  # type: ignore[index]
    assert config["created"] == config_a["created"]
    history = config["history"]
    assert isinstance(history, list) and len(history) == len(ids)
    assert [h.get("created_by") for h in history[2:]] == \
        [h.get("created_by") for h in config_a["history"][1:]]  # type: ignore[index]
    assert history[1] == {"created": config_a["created"], "created_by": "run image B"}
    report = tomllib.loads(rebaser.report.read_text())["image"]
    assert report == {"tags": [str(image_dir)], "digest": digest,
                      "manifest-size": (image_dir / "blobs" / "sha256" / digest.split(":")[1]).stat().st_size}
    # Reproducible: rebasing the rebased image onto the same run image changes nothing.
    index = (image_dir / "index.json").read_bytes()
    rebaser("my-app")
    assert ws.manifest()[0] == digest
    assert (image_dir / "index.json").read_bytes() == index


def test_previous_image_extra_tags_and_umbrella(run: Run, ws: Workspace, rebaser: Rebaser, tmp_path: Path) -> None:
    digest_a = ws.manifest()[0]
    make_run_image(busybox_dir(ws), "latest", tmp_path)
    index_a = (ws.image_dir() / "index.json").read_bytes()
    rebaser("-previous-image", "my-app", "my-app:rebased", "example.com/team/app:2")
    assert (ws.image_dir() / "index.json").read_bytes() == index_a  # the app image itself is untouched
    assert ws.manifest()[0] == digest_a
    rebased = ws.image_dir("my-app", "rebased")
    extra = ws.oci / "example.com" / "team" / "app" / "2"
    digest = Layout(rebased).image("rebased").manifest_digest
    assert Layout(extra).image("2").manifest_digest == digest
    assert Layout(extra).image("2").missing == set()
    report = tomllib.loads(rebaser.report.read_text())["image"]
    assert report["tags"] == [str(rebased), str(extra)]
    assert report["digest"] == digest
    # The same rebase through `lifecycle rebase` and cnb/lifecycle/rebaser, with the env vars.
    env = base_env(CNB_USE_LAYOUT="true", CNB_LAYOUT_DIR=str(ws.oci), CNB_PREVIOUS_IMAGE="my-app",
                   CNB_REPORT_PATH=str(tmp_path / "r.toml"))
    for program, args in (("lifecycle", ["rebase"]), (str(REPO / "cnb" / "lifecycle" / "rebaser"), [])):
        res = run(program, *args, "my-app:rebased", env=env)
        assert res.returncode == 0, res.stdout
        assert Layout(rebased).image("rebased").manifest_digest == digest
        assert tomllib.loads((tmp_path / "r.toml").read_text())["image"]["digest"] == digest


def test_sparse_layouts_stay_sparse(ws: Workspace, rebaser: Rebaser, tmp_path: Path) -> None:
    other = ws.oci / "index.docker.io" / "library" / "run-b" / "latest"
    _digest_b, top_b = make_run_image(other, "latest", tmp_path)
    (other / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]).unlink()
    rebaser("-force", "-run-image", "run-b", "-previous-image", "my-app", "sparse-app")
    image = Layout(ws.image_dir("sparse-app")).image()
    assert image.missing == {BUSYBOX_LAYER}
    assert image.diff_ids[1] == top_b


def test_other_run_image_needs_mirror_or_force(run: Run, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    other = ws.oci / "example.com" / "runs" / "run-b" / "1"
    digest_b, top_b = make_run_image(other, "1", tmp_path)
    ws.analyze(run)
    rebaser = Rebaser(run, ws)
    # Not named in the app's run image metadata: refused, then forced.
    ws.export(run)
    before = _tree_state(ws.oci)
    out = rebaser("-run-image", "example.com/runs/run-b:1", "my-app", code=72)
    assert ("ERROR: failed to rebase: rebase app image: new base image 'example.com/runs/run-b:1' not found in "
            "existing run image metadata: {") in out
    assert out.rstrip().endswith("; please provide -force to override"), out
    assert _tree_state(ws.oci) == before
    out = rebaser("-force", "-run-image", "example.com/runs/run-b:1", "my-app")
    assert "Warning: rebase app image: new base image 'example.com/runs/run-b:1' not found" in out
    label = lifecycle_label(ws.manifest()[2])
    assert label["runImage"] == {"topLayer": top_b, "reference": f"{other}@{digest_b}",
                                 "image": "example.com/runs/run-b:1"}
    assert label["stack"] == {"runImage": {"image": "example.com/runs/run-b:1"}}
    # A mirror in run.toml (recorded in the label by the exporter) needs no -force.
    run_toml = tmp_path / "run.toml"
    run_toml.write_text('[[images]]\nimage = "busybox"\nmirrors = ["example.com/runs/run-b:1"]\n')
    ws.export(run, "-run", str(run_toml))
    label = lifecycle_label(ws.manifest()[2])
    assert label["runImage"]["mirrors"] == ["example.com/runs/run-b:1"]
    out = rebaser("-run-image", "example.com/runs/run-b:1", "my-app")
    assert "Warning" not in out
    label = lifecycle_label(ws.manifest()[2])
    assert label["runImage"]["topLayer"] == top_b
    assert label["runImage"]["image"] == "busybox"
    assert label["stack"] == {"runImage": {"image": "busybox", "mirrors": ["example.com/runs/run-b:1"]}}
    # With no -run-image the recorded name (busybox: run image A) is the one used: back onto A.
    rebaser("my-app")
    config = ws.manifest()[2]
    assert config["rootfs"]["diff_ids"][0] == BUSYBOX_TOP  # type: ignore[index]
    assert lifecycle_label(config)["runImage"]["topLayer"] == BUSYBOX_TOP
    assert "io.buildpacks.base.id" not in config["config"]["Labels"]  # type: ignore[index]


def test_refusals_and_force(ws: Workspace, rebaser: Rebaser, tmp_path: Path) -> None:
    # Another architecture (and a name the app's run image metadata does not record).
    arm = ws.oci / "index.docker.io" / "library" / "run-arm" / "latest"
    make_run_image(arm, "latest", tmp_path, architecture="arm64")
    before = _tree_state(ws.oci)
    out = rebaser("-force=false", "-run-image", "run-arm", "-previous-image", "my-app", "arm-app", code=72,
                  env=base_env(CNB_FORCE_REBASE="true"))
    assert ('ERROR: failed to rebase: unable to satisfy target os/arch constraints; new run image: '
            '{"id":"example/run-b","os":"linux","arch":"arm64"}, old run image: '
            '{"os":"linux","arch":"amd64"}; please provide -force to override') in out
    assert _tree_state(ws.oci) == before
    out = rebaser("-force", "-run-image", "run-arm", "-previous-image", "my-app", "arm-app")
    assert "Warning: unable to satisfy target os/arch constraints" in out
    assert "Warning: rebase app image: new base image 'run-arm' not found in existing run image metadata" in out
    assert Layout(ws.image_dir("arm-app")).image().config.architecture == "arm64"
    # Not marked rebasable.
    make_run_image(busybox_dir(ws), "latest", tmp_path)
    relabel(ws.image_dir(), lambda labels: labels.update({"io.buildpacks.rebasable": "false"}))
    before = _tree_state(ws.oci)
    out = rebaser("my-app", code=72)
    assert "ERROR: failed to rebase: app image is not marked as rebasable; please provide -force to override" in out
    assert _tree_state(ws.oci) == before
    out = rebaser("my-app", env=base_env(CNB_FORCE_REBASE="true"))
    assert "Warning: app image is not marked as rebasable" in out
    assert ws.manifest()[2]["config"]["Labels"]["io.buildpacks.rebasable"] == "false"  # type: ignore[index]


@pytest.mark.parametrize("case,code,message", [
    ("no-args", 3, "ERROR: failed to parse arguments: at least one image argument is required"),
    ("bad-ref", 3, "ERROR: failed to parse arguments: could not parse reference: Bad:Ref"),
    ("no-app", 72, "ERROR: failed to set app image: failed to access image to rebase: image not found at path: "),
    ("no-run-image", 3, "ERROR: the run-image could not be found at path: "),
    ("no-label", 72, "ERROR: failed to set app image: failed to parse arguments: -run-image is required when "
                     "there is no run image metadata available"),
    ("bad-label", 72, "ERROR: failed to set app image: failed to decode label 'io.buildpacks.lifecycle.metadata'"),
    ("wrong-top-layer", 72, "ERROR: failed to rebase: rebase app image: could not find base layer in image: the old "
                            "run image's top layer sha256:0000"),
    ("run-gone", 72, "ERROR: failed to set app image: failed to find accessible run image (tried: "),
    ("corrupt-app", 72, "ERROR: failed to set app image: failed to access image to rebase: invalid image layout"),
    ("legacy-no-stack", 72, "ERROR: failed to rebase: stack not defined on app image"),
    ("legacy-stack", 72, "ERROR: failed to rebase: stack not defined on new base image"),
    ("daemon", 3, "ERROR: rebasing images in a Docker daemon (-daemon) is not supported yet"),
    ("oci-and-daemon", 3, "ERROR: exporting to multiple targets is unsupported"),
])
def test_bad_inputs(run: Run, ws: Workspace, rebaser: Rebaser, case: str, code: int, message: str) -> None:
    args = ["my-app"]
    if case == "no-args":
        args = []
    elif case == "bad-ref":
        args = ["Bad:Ref"]
    elif case == "no-app":
        args = ["none-such"]
    elif case == "no-run-image":
        args = ["-run-image", "none-such", "my-app"]
    elif case == "no-label":
        args = ["busybox"]
    elif case == "bad-label":
        relabel(ws.image_dir(), lambda labels: labels.update({LIFECYCLE_LABEL: "[1, 2"}))
    elif case == "wrong-top-layer":
        def change(labels: dict[str, str]) -> None:
            label = json.loads(labels[LIFECYCLE_LABEL])
            label["runImage"]["topLayer"] = "sha256:" + "0" * 64
            labels[LIFECYCLE_LABEL] = json.dumps(label)
        relabel(ws.image_dir(), change)
    elif case == "legacy-no-stack":
        reconfig(ws.image_dir(), legacy)
    elif case == "legacy-stack":
        def stack(config: dict[str, Any]) -> None:
            legacy(config)
            config["config"]["Labels"]["io.buildpacks.stack.id"] = "example.stack"
        reconfig(ws.image_dir(), stack)
    elif case == "run-gone":
        (busybox_dir(ws) / "index.json").unlink()
    elif case == "corrupt-app":
        (ws.image_dir() / "index.json").write_text("{not json")
    before = _tree_state(ws.oci)
    if case == "daemon":
        res = run("rebaser", "-daemon", "-report", str(rebaser.report), *args)
    elif case == "oci-and-daemon":
        res = run("rebaser", "-oci", "-oci-dir", str(ws.oci), "-daemon", *args)
    else:
        res = run("rebaser", "-oci", "-oci-dir", str(ws.oci), "-report", str(rebaser.report), *args)
    assert res.returncode == code, res.stdout
    assert "Traceback" not in res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, res.stdout
    assert errors[0].startswith(message), res.stdout
    assert _tree_state(ws.oci) == before
    assert not rebaser.report.exists()


# ---- registry mode ------------------------------------------------------------------------------
APP = "rebaser-app"


def test_registry_rebase(run: Run, registry: Registry, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    run_repo = f"{registry.host}/rebaser-runs/run"
    push_busybox(registry.host, "rebaser-runs/run")
    res = run("creator", *sample_build_args(tmp_path), "-insecure-registry", registry.host,
              "-run-image", f"{run_repo}:latest", f"{registry.host}/{APP}")
    assert res.returncode == 0, res.stdout
    # B replaces the run image's tag in the registry.
    b_layout = tmp_path / "run-b"
    digest_b, top_b = make_run_image(b_layout, "latest", tmp_path)
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{b_layout}:latest",
                    f"docker://{run_repo}:latest"], check=True, capture_output=True)
    report_path = tmp_path / "report.toml"
    mark = registry.mark()
    res = run("rebaser", "-insecure-registry", registry.host, "-report", str(report_path),
              "-run-image", f"{run_repo}:latest", f"{registry.host}/{APP}", f"{registry.host}/{APP}:rebased")
    assert res.returncode == 0, res.stdout
    report = tomllib.loads(report_path.read_text())["image"]
    assert report["tags"] == [f"{registry.host}/{APP}", f"{registry.host}/{APP}:rebased"]
    # Only the config was uploaded; B's layer was mounted from the run image's repository.
    uploads = [r for r in registry.requests_since(mark) if r[0] == "PUT" and "/blobs/uploads/" in r[1]]
    assert len(uploads) == 1, uploads
    inspect = json.loads(subprocess.run([skopeo, "inspect", "--tls-verify=false", "--raw",
                                         f"docker://{registry.host}/{APP}:rebased"],
                                        check=True, capture_output=True, text=True).stdout)
    assert len(inspect["layers"]) >= 3
    copy = tmp_path / "copy"
    subprocess.run([skopeo, "copy", "--src-tls-verify=false", f"docker://{registry.host}/{APP}:latest",
                    f"oci:{copy}:latest"], check=True, capture_output=True)
    image = Layout(copy).image("latest")
    assert image.manifest_digest == report["digest"]
    assert image.diff_ids[1] == top_b
    label = json.loads(image.config.labels[LIFECYCLE_LABEL])
    assert label["runImage"]["topLayer"] == top_b
    assert label["runImage"]["reference"] == f"{run_repo}@{digest_b}"
    bundle = tmp_path / "bundle"
    subprocess.run([require_tool("umoci"), "unpack", "--image", f"{copy}:latest", str(bundle)], check=True,
                   capture_output=True)
    assert (bundle / "rootfs" / B_FILE).read_text() == "run image B\n"
    assert (bundle / "rootfs" / str(tmp_path / "app").lstrip("/") / "hello.txt").is_file()
