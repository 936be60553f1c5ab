"""The cache image in an OCI layout: same interface as the volume cache, written via the layout API."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest

from lifecycle.cache import CacheError, CacheReadError
from lifecycle.cache.image import ImageCache
from lifecycle.cache.metadata import METADATA_LABEL, CacheMetadata
from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.image.store import LayoutStore
from tests.cache.helpers import Recorder, f, sha256, tar_bytes
from tests.cache.test_volume import SHA_A, SHA_B, TAR_A, TAR_B, meta


def _cache(root: Path, ref: str = "my/cache") -> ImageCache:
    return ImageCache(LayoutStore(root), ref, Recorder())


def _first(root: Path) -> ImageCache:
    cache = _cache(root)
    assert not cache.exists()
    assert cache.metadata() == CacheMetadata()
    cache.add_layer(io.BytesIO(TAR_A), SHA_A)
    cache.add_layer(io.BytesIO(TAR_B), SHA_B)
    cache.set_metadata(meta(a=SHA_A, b=SHA_B))
    cache.commit()
    return cache


def test_written_as_a_tagged_oci_image(tmp_path: Path) -> None:
    _first(tmp_path)
    path = tmp_path / "index.docker.io" / "my" / "cache" / "latest"
    index = json.loads((path / "index.json").read_text())
    assert index["mediaType"] == m.OCI_INDEX
    assert [d["annotations"][m.REF_NAME] for d in index["manifests"]] == ["latest"]
    image = Layout(path).image(tag="latest")
    assert image.manifest.mediaType == m.OCI_MANIFEST
    assert image.manifest.config.mediaType == m.OCI_CONFIG
    assert [layer.mediaType for layer in image.manifest.layers] == [m.OCI_LAYER_GZIP] * 2
    assert image.diff_ids == [SHA_A, SHA_B]
    assert json.loads(image.config.labels[METADATA_LABEL]) == meta(a=SHA_A, b=SHA_B).to_dict()
    for layer, raw in zip(image.manifest.layers, (TAR_A, TAR_B), strict=True):
        assert gzip.decompress(Layout(path).blob_path(layer.digest).read_bytes()) == raw


def test_read_back_and_reuse_without_rewriting(tmp_path: Path) -> None:
    _first(tmp_path)
    cache = _cache(tmp_path)
    assert cache.exists()
    assert cache.metadata() == meta(a=SHA_A, b=SHA_B)
    with cache.retrieve_layer(SHA_A) as stream:
        assert stream.read() == TAR_A
    layer_a = cache._by_diff[SHA_A]
    blob_a = cache.layout.blob_path(layer_a.digest)
    before = os.stat(blob_a)
    blob_b = cache.layout.blob_path(cache._by_diff[SHA_B].digest)
    cache.reuse_layer(SHA_A)  # b is dropped this time
    cache.set_metadata(meta(a=SHA_A))
    cache.commit()
    after = os.stat(blob_a)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "blob not rewritten"
    assert not blob_b.exists(), "the previous cache image's unused blob is pruned"
    again = _cache(tmp_path)
    assert again.metadata() == meta(a=SHA_A)
    assert again.previous is not None and again.previous.diff_ids == [SHA_A]
    blobs = sorted(os.listdir(cache.layout.path / "blobs" / "sha256"))
    assert len(blobs) == 3, f"config, manifest, one layer: {blobs}"


def test_corrupt_and_missing_blobs_are_read_errors(tmp_path: Path) -> None:
    _first(tmp_path)
    cache = _cache(tmp_path)
    blob = cache.layout.blob_path(cache._by_diff[SHA_A].digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(CacheReadError, match="expected layer blob"):
        cache.verify_layer(SHA_A)
    with pytest.raises(CacheReadError):
        cache.reuse_layer(SHA_A)
    with pytest.raises(CacheReadError), cache.retrieve_layer(SHA_A) as stream:
        while stream.read(1024):
            pass
    cache.layout.blob_path(cache._by_diff[SHA_B].digest).unlink()
    with pytest.raises(CacheReadError, match=f"failed to find cache layer with SHA '{SHA_B}'"):
        cache.verify_layer(SHA_B)
    with pytest.raises(CacheReadError, match="failed to find cache layer"):
        cache.verify_layer("sha256:" + "1" * 64)


@pytest.mark.parametrize("label", ["{not json", "[" * 100_000 + "]" * 100_000, '{"buildpacks": 5}'],
                         ids=["not json", "nested deeply", "wrong types"])
def test_bad_label_is_an_empty_cache_with_warning(tmp_path: Path, label: str) -> None:
    _first(tmp_path)
    cache = _cache(tmp_path)
    cache.set_metadata(meta())
    cache.commit()
    image = Layout(cache.path).image(tag="latest")
    config = image.config.dump()
    config["config"]["Labels"][METADATA_LABEL] = label
    layout = Layout(cache.path)
    config_desc = layout.put_blob(m.canonical_json(config), m.OCI_CONFIG)
    manifest = image.manifest.dump()
    manifest["config"] = config_desc.dump()
    layout.set_tag(layout.put_blob(m.canonical_json(manifest), m.OCI_MANIFEST), "latest")
    log = Recorder()
    assert ImageCache(LayoutStore(tmp_path), "my/cache", log).metadata() == CacheMetadata()
    assert any("using an empty cache" in w for w in log.warnings)


def test_add_checks_the_diff_id_and_digest_refs_are_refused(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pytest.raises(CacheError, match="its contents have SHA"):
        cache.add_layer(io.BytesIO(TAR_A), SHA_B)
    with pytest.raises(CacheError, match="must be a tag"):
        _cache(tmp_path, "my/cache@sha256:" + "a" * 64)


def test_add_from_path(tmp_path: Path) -> None:
    tar = tar_bytes(f("/layers/bp/c/x", b"c" * 100))
    src = tmp_path / "c.tar"
    src.write_bytes(tar)
    cache = _cache(tmp_path / "oci")
    cache.add_layer(src, sha256(tar))
    cache.set_metadata(meta(c=sha256(tar)))
    cache.commit()
    with _cache(tmp_path / "oci").retrieve_layer(sha256(tar)) as stream:
        assert stream.read() == tar


def test_empty_cache_image_has_one_empty_layer(tmp_path: Path) -> None:
    from lifecycle.cache.image import EMPTY_TAR, EMPTY_TAR_DIFF_ID

    cache = _cache(tmp_path)
    cache.set_metadata(CacheMetadata())
    cache.commit()
    path = tmp_path / "index.docker.io" / "my" / "cache" / "latest"
    image = Layout(path).image(tag="latest")
    assert image.diff_ids == [EMPTY_TAR_DIFF_ID]
    assert gzip.decompress(Layout(path).blob_path(image.manifest.layers[0].digest).read_bytes()) == EMPTY_TAR
    reopened = _cache(tmp_path)
    assert reopened.exists() and reopened.metadata() == CacheMetadata()
