"""Cache export: cache=true layers with contents are added or reused; failures are warnings."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from lifecycle.cache import CacheError
from lifecycle.cache.image import ImageCache
from lifecycle.cache.metadata import METADATA_LABEL
from lifecycle.cache.volume import VolumeCache
from lifecycle.image.store import LayoutStore
from lifecycle.phases.cache_export import export_cache
from tests.cache.helpers import Group, Recorder, write_layer

GROUP = [Group("acme/node", "1.2.3"), Group("acme/empty", "0.1")]


def _layers(tmp_path: Path) -> Path:
    layers = tmp_path / "layers"
    write_layer(layers, "acme/node", "deps", cache=True, build=True)
    write_layer(layers, "acme/node", "runtime", cache=True, launch=True)
    write_layer(layers, "acme/node", "launch-only", launch=True)
    (layers / "acme_node" / "ghost.toml").write_text("[types]\ncache = true\nlaunch = true\n")
    (layers / "acme_node" / "store.toml").write_text("[metadata]\nx = 1\n")
    (layers / "acme_node" / "launch.toml").write_text("")
    return layers


def _committed(cache_dir: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((cache_dir / "committed" / METADATA_LABEL).read_text())
    return doc


def test_add_then_reuse_then_change(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    log = Recorder()
    export_cache(VolumeCache(cache_dir, log), layers, GROUP, 1000, 1001, log)
    assert log.infos == ["Adding cache layer 'acme/node:deps'", "Adding cache layer 'acme/node:runtime'"]
    assert log.warnings == ["Failed to cache layer 'acme/node:ghost': layer 'acme/node:ghost' is "
                            "cache=true but has no contents"]
    doc = _committed(cache_dir)
    bps = doc["buildpacks"]
    assert isinstance(bps, list)
    assert [bp["key"] for bp in bps] == ["acme/node", "acme/empty"]
    assert bps[1]["layers"] == {}
    deps = bps[0]["layers"]["deps"]
    assert deps["data"] == {"version": "v1"}
    assert (deps["build"], deps["launch"], deps["cache"]) == (True, False, True)
    assert bps[0]["layers"]["runtime"]["launch"] is True
    assert set(bps[0]["layers"]) == {"deps", "runtime"}
    tar_path = cache_dir / "committed" / f"{deps['sha']}.tar"
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        owners = {(m.uid, m.gid) for m in tar.getmembers()
                  if m.name.startswith(str(layers / "acme_node" / "deps"))}
    deps_dir = str(layers / "acme_node" / "deps")
    assert names.index(str(layers)) < names.index(str(layers / "acme_node")) < names.index(deps_dir)
    assert names[0] == "/" + str(layers).split("/")[1]  # parents first, from the top
    assert all(n.startswith("/") for n in names)  # absolute names
    assert str(layers / "acme_node" / "deps" / "bin" / "tool") in names
    assert owners == {(1000, 1001)}

    log = Recorder()
    export_cache(VolumeCache(cache_dir, log), layers, GROUP, 1000, 1001, log)
    assert log.infos == ["Reusing cache layer 'acme/node:deps'", "Reusing cache layer 'acme/node:runtime'"]
    assert os.listdir(cache_dir / "committed").count(f"{deps['sha']}.tar") == 1

    (layers / "acme_node" / "deps" / "bin" / "tool").write_text("changed")
    log = Recorder()
    export_cache(VolumeCache(cache_dir, log), layers, GROUP, 1000, 1001, log)
    assert log.infos == ["Adding cache layer 'acme/node:deps'", "Reusing cache layer 'acme/node:runtime'"]
    assert not tar_path.exists(), "the replaced layer left the committed cache"
    assert len([n for n in os.listdir(cache_dir / "committed") if n.endswith(".tar")]) == 2


def test_corrupt_cached_copy_is_not_reused(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    export_cache(VolumeCache(cache_dir, Recorder()), layers, GROUP, 0, 0, Recorder())
    sha = _committed(cache_dir)["buildpacks"][0]["layers"]["deps"]["sha"]  # type: ignore[index]
    tar = cache_dir / "committed" / f"{sha}.tar"
    data = bytearray(tar.read_bytes())
    data[-2000] ^= 1
    tar.write_bytes(bytes(data))
    log = Recorder()
    export_cache(VolumeCache(cache_dir, log), layers, GROUP, 0, 0, log)
    assert any(w.startswith("Skipping reuse for layer acme/node:deps: expected layer contents to have SHA")
               for w in log.warnings)
    assert "Adding cache layer 'acme/node:deps'" in log.infos
    VolumeCache(cache_dir, Recorder()).verify_layer(sha)  # the good bytes are back


def test_bad_layer_toml_is_a_warning(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    (layers / "acme_node" / "deps.toml").write_text("launch = true\n")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    log = Recorder()
    export_cache(VolumeCache(cache_dir, log), layers, GROUP, 0, 0, log)
    assert any(w.startswith("Failed to cache layer 'acme/node:deps' because of error reading metadata")
               for w in log.warnings)
    assert "deps" not in _committed(cache_dir)["buildpacks"][0]["layers"]  # type: ignore[index]


class FailingCommit(VolumeCache):
    def commit(self) -> None:
        raise CacheError("committing cache: disk on fire")


def test_failure_is_a_warning_and_keeps_the_previous_cache(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    export_cache(VolumeCache(cache_dir, Recorder()), layers, GROUP, 0, 0, Recorder())
    before = _committed(cache_dir)
    (layers / "acme_node" / "deps" / "bin" / "tool").write_text("changed")
    log = Recorder()
    export_cache(FailingCommit(cache_dir, log), layers, GROUP, 0, 0, log)
    assert log.warnings[-1] == "Failed to export cache: committing cache: disk on fire"
    assert _committed(cache_dir) == before


def test_missing_cache_dir_raises_at_open_not_at_export(tmp_path: Path) -> None:
    with pytest.raises(CacheError):
        VolumeCache(tmp_path / "missing", Recorder())


def test_sbom_cache_layer(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    sbom = layers / "sbom" / "cache" / "acme_node" / "deps"
    sbom.mkdir(parents=True)
    (sbom / "sbom.cdx.json").write_text("{}")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    log = Recorder()
    export_cache(VolumeCache(cache_dir, log), layers, GROUP, 0, 0, log)
    assert "Adding cache layer 'buildpacksio/lifecycle:cache.sbom'" in log.infos
    sha = _committed(cache_dir)["sbom"]["sha"]  # type: ignore[index]
    assert (cache_dir / "committed" / f"{sha}.tar").is_file()


def test_image_cache_export(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    root = tmp_path / "oci"
    log = Recorder()
    export_cache(ImageCache(LayoutStore(root), "cache", log), layers, GROUP, 0, 0, log)
    assert log.infos == ["Layer cache not found", "Adding cache layer 'acme/node:deps'",
                         "Adding cache layer 'acme/node:runtime'"]
    log = Recorder()
    cache = ImageCache(LayoutStore(root), "cache", log)
    export_cache(cache, layers, GROUP, 0, 0, log)
    assert log.infos == ["Reusing cache layer 'acme/node:deps'", "Reusing cache layer 'acme/node:runtime'"]
    assert cache._scratch is None, "reuse writes no tar at all"
    (layers / "acme_node" / "deps" / "bin" / "tool").write_text("changed")
    cache = ImageCache(LayoutStore(root), "cache", log)
    export_cache(cache, layers, GROUP, 0, 0, log)
    assert log.infos[-2:] == ["Adding cache layer 'acme/node:deps'", "Reusing cache layer 'acme/node:runtime'"]
    assert cache._scratch is not None and not cache._scratch.exists(), "scratch removed at commit"
