"""Interop with real tools: we read what skopeo and umoci write, and they read what our store writes."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from tests.conftest import BUSYBOX, BUSYBOX_LAYER, Run, base_env, require_tool
from tests.image.layouts import blob_file, layer_tar

pytestmark = pytest.mark.tools


def tool(*args: str, cwd: Path | None = None) -> str:
    res = subprocess.run(list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=120)
    assert res.returncode == 0, f"{' '.join(args)}:\n{res.stdout}"
    return res.stdout


def analyze(run: Run, root: Path, tmp_path: Path, run_image: str) -> dict[str, object]:
    analyzed = tmp_path / "analyzed.toml"
    res = run("analyzer", "-oci", "-oci-dir", str(root), "-run-image", run_image,
              "-analyzed", str(analyzed), "my-app", env=base_env())
    assert res.returncode == 0, res.stdout
    data = tomllib.loads(analyzed.read_text())["run-image"]
    assert isinstance(data, dict)
    return data


def index_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    digests = [d["digest"] for d in index["manifests"]
               if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(digests) == 1, index
    return str(digests[0])


# ---- skopeo writes, we read ------------------------------------------------------------------

def test_skopeo_copy_is_read(run: Run, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    root = tmp_path / "oci"
    canonical = root / "index.docker.io" / "cnb" / "copied" / "latest"
    canonical.parent.mkdir(parents=True)
    # The fixture's index.json names no tag, so the source is given without one (tools.md).
    tool(skopeo, "copy", "-q", f"oci:{BUSYBOX}", f"oci:{canonical}:latest")
    data = analyze(run, root, tmp_path, "cnb/copied")
    assert data["reference"] == f"{canonical}@{index_digest(canonical, 'latest')}"
    assert data["target"] == {"os": "linux", "arch": "amd64"}


def test_skopeo_tags_in_the_rfc_layout(run: Run, tmp_path: Path) -> None:
    """skopeo writing two tags into ``<root>/cnb/my-full-stack-run``: the RFC's example layout."""
    skopeo = require_tool("skopeo")
    root = tmp_path / "oci"
    layout = root / "cnb" / "my-full-stack-run"
    layout.parent.mkdir(parents=True)
    tool(skopeo, "copy", "-q", f"oci:{BUSYBOX}", f"oci:{layout}:bionic")
    tool(skopeo, "copy", "-q", "--format", "v2s2", f"oci:{BUSYBOX}", f"oci:{layout}:focal")
    bionic, focal = index_digest(layout, "bionic"), index_digest(layout, "focal")
    assert bionic != focal
    assert analyze(run, root, tmp_path, "cnb/my-full-stack-run:bionic")["reference"] == f"{layout}@{bionic}"
    assert analyze(run, root, tmp_path, "cnb/my-full-stack-run:focal")["reference"] == f"{layout}@{focal}"
    # skopeo inspect agrees on the digest we record
    inspected = json.loads(tool(skopeo, "inspect", f"oci:{layout}:bionic"))
    assert inspected["Digest"] == bionic


def test_skopeo_sparse_copy_is_read(run: Run, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    root = tmp_path / "oci"
    canonical = root / "index.docker.io" / "library" / "busybox" / "latest"
    canonical.parent.mkdir(parents=True)
    tool(skopeo, "copy", "-q", f"oci:{BUSYBOX}", f"oci:{canonical}:latest")
    blob_file(canonical, BUSYBOX_LAYER).unlink()
    data = analyze(run, root, tmp_path, "busybox")
    assert data["reference"] == f"{canonical}@{index_digest(canonical, 'latest')}"


# ---- umoci writes, we read -------------------------------------------------------------------

def test_umoci_layout_is_read(run: Run, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    root = tmp_path / "oci"
    layout = root / "index.docker.io" / "cnb" / "umoci-run" / "bionic"
    layout.parent.mkdir(parents=True)
    bundle = tmp_path / "bundle"
    tool(umoci, "init", "--layout", str(layout))
    tool(umoci, "new", "--image", f"{layout}:bionic")
    tool(umoci, "unpack", "--rootless", "--image", f"{layout}:bionic", str(bundle))
    (bundle / "rootfs" / "etc").mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs" / "etc" / "os-release").write_text("ID=umoci\n")
    tool(umoci, "repack", "--image", f"{layout}:bionic", str(bundle))
    tool(umoci, "config", "--image", f"{layout}:bionic",
         "--config.label", "io.buildpacks.base.id=io.example.umoci",
         "--config.label", "io.buildpacks.base.distro.name=umoci",
         "--config.label", "io.buildpacks.base.distro.version=0.4")
    data = analyze(run, root, tmp_path, "cnb/umoci-run:bionic")
    assert data["reference"] == f"{layout}@{index_digest(layout, 'bionic')}"
    target = data["target"]
    assert isinstance(target, dict)
    assert target["id"] == "io.example.umoci"
    assert target["distro"] == {"name": "umoci", "version": "0.4"}
    assert target["os"] == "linux"


# ---- our store writes, the tools read --------------------------------------------------------

def _write_with_store(layout_dir: Path) -> m.Descriptor:
    layout = Layout(layout_dir)
    raw = layer_tar({"hello.txt": b"hello from the store\n", "bin/tool": b"#!/bin/sh\necho hi\n"})
    with layout.blob_writer() as writer:
        data = gzip.compress(raw, compresslevel=6, mtime=0)
        for start in range(0, len(data), 7):  # stream it in pieces
            writer.write(data[start:start + 7])
        layer = writer.commit(m.OCI_LAYER_GZIP)
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Labels": {"io.buildpacks.base.id": "io.example.store"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created_by": "test"}],
    }
    config_desc = layout.put_blob(m.canonical_json(config), m.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": config_desc.dump(),
                "layers": [layer.dump()]}
    manifest_desc = layout.put_blob(m.canonical_json(manifest), m.OCI_MANIFEST)
    layout.set_tag(manifest_desc, "latest")
    layout.set_tag(manifest_desc, "v1")
    return manifest_desc


def test_store_output_validates(run: Run, tmp_path: Path) -> None:
    validator = require_tool("oci-image-tool")
    skopeo = require_tool("skopeo")
    root = tmp_path / "oci"
    layout = root / "index.docker.io" / "cnb" / "ours" / "latest"
    desc = _write_with_store(layout)
    out = tool(validator, "validate", "--type", "image", str(layout))
    assert "Validation succeeded" in out
    for tag in ("latest", "v1"):
        inspected = json.loads(tool(skopeo, "inspect", f"oci:{layout}:{tag}"))
        assert inspected["Digest"] == desc.digest
        assert inspected["Labels"] == {"io.buildpacks.base.id": "io.example.store"}
    raw = tool(skopeo, "inspect", "--raw", f"oci:{layout}:latest")
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == desc.digest
    # and umoci can unpack it (checks diff_ids), and we read it back
    umoci = require_tool("umoci")
    tool(umoci, "unpack", "--rootless", "--image", f"{layout}:latest", str(tmp_path / "unpacked"))
    assert (tmp_path / "unpacked" / "rootfs" / "hello.txt").read_text() == "hello from the store\n"
    data = analyze(run, root, tmp_path, "cnb/ours")
    assert data["reference"] == f"{layout}@{desc.digest}"
    assert data["target"] == {"id": "io.example.store", "os": "linux", "arch": "amd64"}


def test_store_keeps_other_tags_and_skopeo_reads_them(tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    layout = tmp_path / "layout"
    shutil.copytree(BUSYBOX, layout)
    desc = _write_with_store(layout)
    index = json.loads((layout / "index.json").read_text())
    names = [d.get("annotations", {}).get("org.opencontainers.image.ref.name") for d in index["manifests"]]
    assert names == [None, "latest", "v1"]  # the fixture's unnamed descriptor is kept
    assert json.loads(tool(skopeo, "inspect", f"oci:{layout}:v1"))["Digest"] == desc.digest
