"""Rebuilds end to end: the creator run again on the same app (previous image, layer reuse,
reproducible digests), the build cache (directory and layout image, corrupted caches), and the
five phases as separate processes giving the creator's image."""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from tests.e2e.conftest import BUILDPACKS, ORDER, Workspace, assert_banners, blob_files, lines

CACHE_LAYER = "samples/hello:cache-data"
REUSED = ["Reusing layer 'samples/hello:hello'", "Reusing layer 'buildpacksio/lifecycle:launcher'",
          "Reusing layer 'buildpacksio/lifecycle:config'", "Reusing layer 'buildpacksio/lifecycle:process-types'"]


def committed(cache: Path) -> dict[str, bytes]:
    """The committed cache directory's files and their bytes."""
    return {p.name: p.read_bytes() for p in sorted((cache / "committed").iterdir())}


def cache_tars(cache: Path) -> list[Path]:
    return sorted((cache / "committed").glob("sha256:*.tar"))


def assert_cache_sound(cache: Path) -> None:
    """Every committed tar is named by its sha256, and the metadata lists exactly those."""
    meta = json.loads((cache / "committed" / "io.buildpacks.lifecycle.cache.metadata").read_text())
    shas = {layer["sha"] for bp in meta["buildpacks"] for layer in bp["layers"].values()}
    tars = cache_tars(cache)
    assert {t.name.removesuffix(".tar") for t in tars} == shas
    for tar in tars:
        assert "sha256:" + hashlib.sha256(tar.read_bytes()).hexdigest() == tar.name.removesuffix(".tar")


def test_second_build_reuses_layers(ws: Workspace) -> None:
    ws.creator()
    first, first_ids, first_blobs = ws.digest(), ws.diff_ids(), ws.blobs()

    ws.fresh()  # a new layers dir and app copy; the layout keeps the first image
    out = ws.creator()
    assert_banners(out)
    analyzed = tomllib.loads((ws.layers / "analyzed.toml").read_text())
    assert analyzed["image"]["reference"] == f"{ws.image_dir()}@{first}"  # the previous image, automatically
    assert 'Restoring metadata for "samples/hello:hello" from app image' in out
    for line in REUSED:
        assert line in out
    assert "Reused 1/1 app layer(s)" in out
    assert lines(out, "Adding layer") == []
    assert ws.digest() == first
    assert ws.diff_ids() == first_ids
    assert ws.blobs() == first_blobs  # nothing new was written

    ws.fresh()
    (ws.app / "hello.txt").write_text("Hello again!\n")
    out = ws.creator()
    for line in REUSED:
        assert line in out
    assert "Added 1/1 app layer(s)" in out
    assert ws.digest() != first
    ids = ws.diff_ids()
    changed = [i for i, (a, b) in enumerate(zip(first_ids, ids, strict=True)) if a != b]
    history = Layout(ws.image_dir()).image().config.dump()["history"]
    assert [history[i]["created_by"] for i in changed] == ["Application Layer"]
    assert len(ws.blobs() - first_blobs) == 3  # the app layer, the config, the manifest


def test_cache_dir_second_build(ws: Workspace) -> None:
    cache = ("-cache-dir", str(ws.cache))
    out = ws.creator(*cache)
    assert "samples/hello: building cached layer" in out
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    first, first_blobs, first_cache = ws.digest(), ws.blobs(), committed(ws.cache)
    assert len(cache_tars(ws.cache)) == 1
    assert_cache_sound(ws.cache)

    ws.fresh()
    out = ws.creator(*cache)
    assert f'Restoring data for "{CACHE_LAYER}" from cache' in out
    assert f'Restoring metadata for "{CACHE_LAYER}" from cache' in out
    assert "samples/hello: reusing cached layer" in out
    assert "samples/hello: building cached layer" not in out
    for line in REUSED:
        assert line in out
    assert f"Reusing cache layer '{CACHE_LAYER}'" in out
    assert lines(out, "Warning:") == []
    assert ws.digest() == first
    assert ws.blobs() == first_blobs  # no new blob at all: same manifest, same config
    assert committed(ws.cache) == first_cache

    # A changed app: the checksum in the cached layer's metadata no longer matches, so the
    # buildpack rebuilds it; the launch layer is still reused.
    ws.fresh()
    (ws.app / "hello.txt").write_text("Hello again!\n")
    out = ws.creator(*cache)
    assert "samples/hello: building cached layer" in out
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    assert "Reusing layer 'samples/hello:hello'" in out
    assert len(ws.blobs() - first_blobs) == 3  # the app layer, the config, the manifest
    assert committed(ws.cache) != first_cache
    assert len(cache_tars(ws.cache)) == 1
    assert_cache_sound(ws.cache)


@pytest.mark.parametrize("ref,where,tag", [("my-cache", "index.docker.io/library/my-cache/latest", "latest"),
                                           ("example.com/team/build-cache:v1", "example.com/team/build-cache/v1",
                                            "v1")])
def test_cache_image_second_build(ws: Workspace, ref: str, where: str, tag: str) -> None:
    cache = ("-cache-image", f"oci:{ref}")  # D14: the explicit form keeps the cache in the layout
    out = ws.creator(*cache)
    assert "samples/hello: building cached layer" in out
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    cache_dir = ws.oci / where
    index = json.loads((cache_dir / "index.json").read_text())
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]] == [tag]
    image = Layout(cache_dir).image(tag)
    meta = json.loads(image.config.dump()["config"]["Labels"]["io.buildpacks.lifecycle.cache.metadata"])
    layer = meta["buildpacks"][0]["layers"]["cache-data"]
    assert meta["buildpacks"][0]["key"] == "samples/hello"
    assert layer["cache"] is True and layer["launch"] is False
    assert image.diff_ids == [layer["sha"]]
    first, first_blobs = ws.digest(), ws.blobs()
    cache_manifest, cache_blobs = image.manifest_digest, blob_files(cache_dir)

    ws.fresh()
    out = ws.creator(*cache)
    assert f'Restoring data for "{CACHE_LAYER}" from cache' in out
    assert "samples/hello: reusing cached layer" in out
    assert "samples/hello: building cached layer" not in out
    for line in REUSED:
        assert line in out
    assert f"Reusing cache layer '{CACHE_LAYER}'" in out
    assert lines(out, "Warning:") == []
    assert ws.digest() == first
    assert ws.blobs() == first_blobs
    assert Layout(cache_dir).image(tag).manifest_digest == cache_manifest
    assert blob_files(cache_dir) == cache_blobs


def _phases(ws: Workspace, *cache: str) -> str:
    """analyzer, detector, restorer, builder, exporter as separate processes, same flags and dirs."""
    oci = ("-oci", "-oci-dir", str(ws.oci))
    layers = ("-layers", str(ws.layers))
    app = ("-app", str(ws.app))
    bps = ("-buildpacks", str(BUILDPACKS))
    out = ws.run("analyzer", *oci, *layers, "-run-image", "busybox", "my-app")
    out += ws.run("detector", *app, *bps, "-order", str(ORDER), *layers)
    out += ws.run("restorer", *oci, *layers, *cache)
    out += ws.run("builder", *app, *bps, *layers)
    out += ws.run("exporter", *oci, *layers, *app, *cache, "my-app")
    return out


def test_phases_give_the_creators_image(ws: Workspace, tmp_path: Path) -> None:
    cache = ("-cache-dir", str(ws.cache))
    ws.creator(*cache)
    creator_digest, creator_cache = ws.digest(), committed(ws.cache)

    ws.fresh(oci=True, cache=True)  # same paths, nothing left from the creator
    assert not ws.image_dir().exists()
    out = _phases(ws, *cache)
    assert "samples/hello: building cached layer" in out
    assert ws.digest() == creator_digest
    assert committed(ws.cache) == creator_cache
    first_digest = creator_digest

    # A rebuild from the same state (previous image + cache) with a changed app, both ways.
    saved = tmp_path / "saved"
    shutil.copytree(ws.oci, saved / "oci", symlinks=True)
    shutil.copytree(ws.cache, saved / "cache", symlinks=True)

    def rebuild_from_saved() -> None:
        ws.fresh(oci=True, cache=True)
        shutil.rmtree(ws.oci)
        shutil.rmtree(ws.cache)
        shutil.copytree(saved / "oci", ws.oci, symlinks=True)
        shutil.copytree(saved / "cache", ws.cache, symlinks=True)
        (ws.app / "hello.txt").write_text("Hello again!\n")

    rebuild_from_saved()
    out = ws.creator(*cache)
    assert "samples/hello: building cached layer" in out
    assert "Reusing layer 'samples/hello:hello'" in out
    previous = tomllib.loads((ws.layers / "analyzed.toml").read_text())["image"]["reference"]
    assert previous == f"{ws.image_dir()}@{first_digest}"
    creator_digest, creator_cache = ws.digest(), committed(ws.cache)
    assert creator_digest != first_digest

    rebuild_from_saved()
    out = _phases(ws, *cache)
    assert "samples/hello: building cached layer" in out
    assert "Reusing layer 'samples/hello:hello'" in out
    assert ws.digest() == creator_digest
    assert committed(ws.cache) == creator_cache


def _corrupt(ws: Workspace, case: str) -> str:
    """Damage the committed cache (or the cache image); the warning the restore should give."""
    if case == "image-blob-flipped":
        image = Layout(ws.image_dir("my-cache")).image()
        blob = ws.image_dir("my-cache") / "blobs" / "sha256" / image.manifest.layers[0].digest.split(":")[1]
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        return f"Warning: Skipping restore for layer {CACHE_LAYER}: "
    (tar,) = cache_tars(ws.cache)
    sha = tar.name.removesuffix(".tar")
    if case == "flipped":
        data = bytearray(tar.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tar.write_bytes(bytes(data))
        return f"Warning: Skipping restore for layer {CACHE_LAYER}: expected layer contents to have SHA '{sha}'"
    if case == "truncated":
        whole = tar.read_bytes()
        tar.write_bytes(whole[: len(whole) // 2])
        return f"Warning: Skipping restore for layer {CACHE_LAYER}: "
    if case == "missing":
        tar.unlink()
        return f"Warning: Skipping restore for layer {CACHE_LAYER}: failed to find cache layer with SHA '{sha}'"
    assert case == "bad-metadata"
    (ws.cache / "committed" / "io.buildpacks.lifecycle.cache.metadata").write_text("{not json")
    return "Warning: Ignoring cache metadata "


@pytest.mark.parametrize("case", ["flipped", "truncated", "missing", "bad-metadata", "image-blob-flipped"])
def test_corrupt_cache_is_rebuilt(ws: Workspace, case: str) -> None:
    cache = ("-cache-image", "oci:my-cache") if case.startswith("image") else ("-cache-dir", str(ws.cache))
    ws.creator(*cache)
    first = ws.digest()
    warning = _corrupt(ws, case)

    ws.fresh()
    out = ws.creator(*cache)
    assert_banners(out)
    assert any(line.startswith(warning) for line in lines(out, "Warning:")), out
    assert f'Restoring metadata for "{CACHE_LAYER}" from cache' not in out
    assert "samples/hello: building cached layer" in out
    assert "samples/hello: reusing cached layer" not in out
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    assert ws.digest() == first  # the rebuilt layer is the same; the image is unchanged
    if case.startswith("image"):
        image = Layout(ws.image_dir("my-cache")).image()
        for desc in image.manifest.layers:  # the healed cache image's blobs verify
            blob = ws.image_dir("my-cache") / "blobs" / "sha256" / desc.digest.split(":")[1]
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == desc.digest.split(":")[1]
    else:
        assert_cache_sound(ws.cache)  # the next cache is healthy again

    # and the healed cache is used by the next build
    ws.fresh()
    out = ws.creator(*cache)
    assert "samples/hello: reusing cached layer" in out
    assert lines(out, "Warning:") == []
