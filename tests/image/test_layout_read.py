"""Reading OCI layouts: which manifest is chosen (D3), sparse layouts (D4), and corrupt content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image.layout import Layout, host_platform
from tests.conftest import BUSYBOX, BUSYBOX_LAYER, BUSYBOX_MANIFEST
from tests.image.layouts import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    add_image,
    add_index,
    blob_file,
    make_layout,
    named,
    on,
    write_index,
)

HOST = host_platform()
OTHER_ARCH = "s390x" if HOST.architecture != "s390x" else "riscv64"


@pytest.fixture
def busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    shutil.copytree(BUSYBOX, path)
    return path


def test_fixture_without_annotations_or_media_type(busybox: Path) -> None:
    image = Layout(busybox).image(tag="latest")
    assert image.manifest_digest == BUSYBOX_MANIFEST
    assert image.identifier == f"{busybox}@{BUSYBOX_MANIFEST}"
    assert image.manifest.mediaType == DOCKER_MANIFEST
    assert (image.config.os, image.config.architecture) == ("linux", "amd64")
    assert image.missing == set()


def test_sparse_layout_reads(busybox: Path) -> None:
    blob_file(busybox, BUSYBOX_LAYER).unlink()
    image = Layout(busybox).image(tag="latest")
    assert image.manifest_digest == BUSYBOX_MANIFEST
    assert image.missing == {BUSYBOX_LAYER}
    assert not image.has_layer_blob(BUSYBOX_LAYER)
    assert len(image.diff_ids) == 1


def test_no_oci_layout_file_is_fine(tmp_path: Path) -> None:
    desc = add_image(tmp_path)
    write_index(tmp_path, [desc], version=None)
    assert Layout(tmp_path).image().manifest_digest == desc["digest"]


@pytest.mark.parametrize("ref_name", ["bionic", "docker.io/cnb/run:bionic", "cnb/run:bionic"])
def test_selects_by_ref_name(tmp_path: Path, ref_name: str) -> None:
    a = add_image(tmp_path, files={"a": b"a"})
    b = add_image(tmp_path, files={"b": b"b"})
    write_index(tmp_path, [named(a, "focal"), named(b, ref_name)])
    assert Layout(tmp_path).image(tag="bionic").manifest_digest == b["digest"]
    assert Layout(tmp_path).image(tag="focal").manifest_digest == a["digest"]


def test_unnamed_descriptor_is_taken_when_no_name_matches(tmp_path: Path) -> None:
    a = add_image(tmp_path, files={"a": b"a"})
    b = add_image(tmp_path, files={"b": b"b"})
    write_index(tmp_path, [named(a, "focal"), b])
    assert Layout(tmp_path).image(tag="bionic").manifest_digest == b["digest"]


def test_single_descriptor_with_other_name_is_a_mismatch(tmp_path: Path) -> None:
    make_layout(tmp_path, "focal")
    with pytest.raises(ImageError, match=r"reference name mismatch .*want 'bionic', found 'focal'"):
        Layout(tmp_path).image(tag="bionic")


def test_no_descriptor_named(tmp_path: Path) -> None:
    a = add_image(tmp_path, files={"a": b"a"})
    b = add_image(tmp_path, files={"b": b"b"})
    write_index(tmp_path, [named(a, "focal"), named(b, "jammy")])
    with pytest.raises(ImageError, match=r"no manifest named 'bionic'.*focal, jammy"):
        Layout(tmp_path).image(tag="bionic")


def test_ambiguous_is_an_error_listing_candidates(tmp_path: Path) -> None:
    a = add_image(tmp_path, files={"a": b"a"})
    b = add_image(tmp_path, files={"b": b"b"})
    write_index(tmp_path, [a, b])
    with pytest.raises(ImageError, match="more than one manifest matches") as info:
        Layout(tmp_path).image(tag="latest")
    assert a["digest"] in str(info.value) and b["digest"] in str(info.value)


def test_platform_chooses_among_top_level_descriptors(tmp_path: Path) -> None:
    here = on(add_image(tmp_path, arch=HOST.architecture), "linux", HOST.architecture)
    other = on(add_image(tmp_path, arch=OTHER_ARCH), "linux", OTHER_ARCH)
    write_index(tmp_path, [other, here])
    assert Layout(tmp_path).image().manifest_digest == here["digest"]
    wanted = m.Platform(os="linux", architecture=OTHER_ARCH)
    assert Layout(tmp_path).image(platform=wanted).manifest_digest == other["digest"]


@pytest.mark.parametrize("index_type", [None, "application/vnd.oci.image.index.v1+json", DOCKER_LIST])
def test_index_json_media_types(tmp_path: Path, index_type: str | None) -> None:
    desc = add_image(tmp_path, docker=index_type == DOCKER_LIST)
    write_index(tmp_path, [named(desc, "latest")], media_type=index_type)
    assert Layout(tmp_path).image(tag="latest").manifest_digest == desc["digest"]


@pytest.mark.parametrize("nested_type", ["application/vnd.oci.image.index.v1+json", DOCKER_LIST])
def test_nested_index_picks_platform(tmp_path: Path, nested_type: str) -> None:
    docker = nested_type == DOCKER_LIST
    here = on(add_image(tmp_path, arch=HOST.architecture, docker=docker), "linux", HOST.architecture)
    other = on(add_image(tmp_path, arch=OTHER_ARCH, docker=docker), "linux", OTHER_ARCH)
    index = add_index(tmp_path, [other, here], media_type=nested_type)
    write_index(tmp_path, [named(index, "latest")])
    image = Layout(tmp_path).image(tag="latest")
    assert image.manifest_digest == here["digest"]
    assert image.config.architecture == HOST.architecture
    # the index digest selects the index; below it the platform decides
    assert Layout(tmp_path).image(digest=index["digest"]).manifest_digest == here["digest"]
    # a manifest digest inside the index selects that manifest
    assert Layout(tmp_path).image(digest=other["digest"]).manifest_digest == other["digest"]


def test_nested_index_without_our_platform(tmp_path: Path) -> None:
    other = on(add_image(tmp_path, arch=OTHER_ARCH), "linux", OTHER_ARCH)
    index = add_index(tmp_path, [other])
    write_index(tmp_path, [index])
    with pytest.raises(ImageError, match=f"no manifest for platform linux/{HOST.architecture}"):
        Layout(tmp_path).image()


def test_nested_index_without_media_type_on_descriptor(tmp_path: Path) -> None:
    here = on(add_image(tmp_path, arch=HOST.architecture), "linux", HOST.architecture)
    index = add_index(tmp_path, [here])
    write_index(tmp_path, [{k: v for k, v in index.items() if k != "mediaType"}])
    assert Layout(tmp_path).image().manifest_digest == here["digest"]


def test_digest_selects_and_mismatch_fails(tmp_path: Path) -> None:
    a = add_image(tmp_path, files={"a": b"a"})
    b = add_image(tmp_path, files={"b": b"b"})
    write_index(tmp_path, [named(a, "x"), named(b, "y")])
    assert Layout(tmp_path).image(digest=b["digest"]).manifest_digest == b["digest"]
    write_index(tmp_path, [a])
    with pytest.raises(ImageError, match="digest mismatch"):
        Layout(tmp_path).image(digest=b["digest"])


def test_manifest_without_media_type(tmp_path: Path) -> None:
    """umoci writes manifests with no mediaType field."""
    desc = add_image(tmp_path)
    manifest = json.loads(blob_file(tmp_path, desc["digest"]).read_bytes())
    del manifest["mediaType"]
    data = json.dumps(manifest).encode()
    from tests.image.layouts import put_blob

    plain = put_blob(tmp_path, data, OCI_MANIFEST)
    write_index(tmp_path, [named(plain, "latest")])
    assert Layout(tmp_path).image(tag="latest").manifest_digest == plain["digest"]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p, d: (p / "index.json").write_text("{oops"), "index.json is not valid JSON"),
    (lambda p, d: (p / "index.json").write_text("[]"), "index.json is not valid: Input should be"),
    (lambda p, d: (p / "index.json").write_text('{"manifests": []}'), "no manifests in"),
    (lambda p, d: (p / "index.json").write_text("{}"), "no manifests in"),
    (lambda p, d: blob_file(p, d).unlink(), "is missing from layout"),
    (lambda p, d: blob_file(p, d).write_text("{}"), "is corrupt"),
    (lambda p, d: (p / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}'),
     "unsupported imageLayoutVersion '2.0.0'"),
    (lambda p, d: (p / "oci-layout").write_text("nope"), "invalid oci-layout file"),
    (lambda p, d: (p / "index.json").write_text(json.dumps(
        {"manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:../../../etc/passwd", "size": 3}]})),
     "invalid digest"),
    (lambda p, d: (p / "index.json").write_text(json.dumps(
        {"manifests": [{"mediaType": "text/plain", "digest": d, "size": 1}]})), "unexpected media type"),
    (lambda p, d: (p / "index.json").write_text(json.dumps(
        {"manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1 << 40}]})), "too large"),
])
def test_corrupt_layouts(tmp_path: Path, damage: object, message: str) -> None:
    desc = make_layout(tmp_path, "latest")
    damage(tmp_path, desc["digest"])  # type: ignore[operator]
    with pytest.raises(ImageError, match=message):
        Layout(tmp_path).image(tag="latest")


def test_config_and_manifest_disagree(tmp_path: Path) -> None:
    desc = add_image(tmp_path)
    manifest = json.loads(blob_file(tmp_path, desc["digest"]).read_bytes())
    manifest["layers"].append(manifest["layers"][0])
    from tests.image.layouts import put_json

    bad = put_json(tmp_path, manifest, OCI_MANIFEST)
    write_index(tmp_path, [bad])
    with pytest.raises(ImageError, match="lists 2 layers but its config has 1 diff_ids"):
        Layout(tmp_path).image()


def test_layer_stream_is_verified(busybox: Path) -> None:
    layout = Layout(busybox)
    image = layout.image()
    layer = image.manifest.layers[0]
    with layout.open_blob(layer) as reader:
        assert len(reader.read()) == layer.size
    blob_file(busybox, BUSYBOX_LAYER).write_bytes(b"not the layer")
    with pytest.raises(ImageError, match="is corrupt"), layout.open_blob(layer) as reader:
        while reader.read(4096):
            pass


def test_tags_sharing_a_digest(tmp_path: Path) -> None:
    """skopeo writes one descriptor per tag; a digest (analyzed.toml's identifier) picks either."""
    a = add_image(tmp_path)
    write_index(tmp_path, [named(a, "latest"), named(a, "focal")])
    assert Layout(tmp_path).image(digest=a["digest"]).manifest_digest == a["digest"]
    assert Layout(tmp_path).image(tag="focal").manifest_digest == a["digest"]
