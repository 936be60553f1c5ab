"""The cache image in a registry (``-cache-image`` in registry mode), against a real docker-registry on
127.0.0.1: the class itself, then the creator end to end (skopeo reads the cache image back)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
from pathlib import Path

import pytest

from lifecycle.cache import CacheError, CacheReadError, from_settings, open_cache
from lifecycle.cache.image import write_cache_image
from lifecycle.cache.metadata import METADATA_LABEL, CacheMetadata
from lifecycle.cache.registry_image import RegistryImageCache
from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.image.registry import RegistryStore
from lifecycle.platform.settings import Settings
from tests.cache.helpers import Recorder, f, sha256, tar_bytes
from tests.cache.test_volume import SHA_A, SHA_B, TAR_A, TAR_B, meta
from tests.cli.test_registry_export import UPLOADS
from tests.conftest import Run, require_tool
from tests.support.sample import push_busybox, sample_build_args
from tests.support.services import Registry

CACHE_LAYER = "samples/hello:cache-data"


def _store(reg: Registry) -> RegistryStore:
    return RegistryStore(insecure_registries=[reg.host])


def _cache(reg: Registry, repo: str, log: Recorder | None = None) -> RegistryImageCache:
    return RegistryImageCache(_store(reg), reg.ref(repo), log or Recorder())


def _uploads(reg: Registry, mark: int, repo: str) -> list[tuple[str, str, int]]:
    return [r for r in reg.requests_since(mark)
            if r[0] in UPLOADS and r[1].startswith(f"/v2/{repo}/blobs/")]


def _skopeo_inspect(ref: str, *extra: str) -> dict[str, object]:
    out = subprocess.run([require_tool("skopeo"), "inspect", "--tls-verify=false", *extra, f"docker://{ref}"],
                         check=True, capture_output=True, text=True).stdout
    data: dict[str, object] = json.loads(out)
    return data


def _blob_data(reg: Registry, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return reg.data_dir / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"


def _first(reg: Registry, repo: str) -> RegistryImageCache:
    log = Recorder()
    cache = _cache(reg, repo, log)
    assert not cache.exists()
    assert cache.metadata() == CacheMetadata()
    cache.add_layer(io.BytesIO(TAR_A), SHA_A)
    cache.add_layer(io.BytesIO(TAR_B), SHA_B)
    cache.set_metadata(meta(a=SHA_A, b=SHA_B))
    cache.commit()
    assert log.warnings == []
    return cache


def _push_crafted(reg: Registry, repo: str, tmp: Path, diff_id: str, blob_tar: bytes,
                  metadata: CacheMetadata) -> None:
    """A cache image whose config names ``diff_id`` for a layer whose bytes are ``blob_tar``."""
    layout = Layout(tmp / "crafted")
    with layout.blob_writer() as writer:
        writer.write(gzip.compress(blob_tar, mtime=0))
        desc = writer.commit(m.OCI_LAYER_GZIP)
    layout.set_tag(write_cache_image(layout, {diff_id: desc}, metadata), "latest")
    store = _store(reg)
    try:
        store.push_layout_image(layout.path, "latest", reg.ref(repo))
    finally:
        store.close()


# ---- the class ------------------------------------------------------------------------------------
def test_missing_image_is_an_empty_cache(registry: Registry) -> None:
    log = Recorder()
    cache = _cache(registry, "rc/none", log)
    assert cache.name == registry.ref("rc/none")
    assert not cache.exists()
    assert cache.metadata() == CacheMetadata()
    with pytest.raises(CacheReadError, match="failed to find cache layer"):
        cache.verify_layer(SHA_A)
    assert log.lines == []


def test_written_read_back_and_inspectable(registry: Registry) -> None:
    _first(registry, "rc/basic")
    inspect = _skopeo_inspect(registry.ref("rc/basic"))
    labels = inspect["Labels"]
    assert isinstance(labels, dict)
    assert json.loads(labels[METADATA_LABEL]) == meta(a=SHA_A, b=SHA_B).to_dict()
    raw = _skopeo_inspect(registry.ref("rc/basic"), "--raw")
    assert raw["mediaType"] == m.OCI_MANIFEST
    layers = raw["layers"]
    assert isinstance(layers, list) and [x["mediaType"] for x in layers] == [m.OCI_LAYER_GZIP] * 2
    cache = _cache(registry, "rc/basic")
    assert cache.exists()
    assert cache.metadata() == meta(a=SHA_A, b=SHA_B)
    with cache.retrieve_layer(SHA_A) as stream:
        assert stream.read() == TAR_A
    with cache.retrieve_layer(SHA_B) as stream:  # in small reads, as the restorer's tar reader does
        parts = []
        while chunk := stream.read(100):
            parts.append(chunk)
        assert b"".join(parts) == TAR_B
    cache.verify_layer(SHA_A)


def test_reused_and_unchanged_blobs_are_not_uploaded(registry: Registry) -> None:
    _first(registry, "rc/reuse")
    before = _skopeo_inspect(registry.ref("rc/reuse"), "--raw")
    # Same layers, same metadata: nothing is uploaded; the manifest is the same.
    cache = _cache(registry, "rc/reuse")
    mark = registry.mark()
    cache.reuse_layer(SHA_A)
    cache.reuse_layer(SHA_B)
    cache.set_metadata(meta(a=SHA_A, b=SHA_B))
    cache.commit()
    assert _uploads(registry, mark, "rc/reuse") == []
    assert not any(r[0] == "GET" and "/blobs/" in r[1] for r in registry.requests_since(mark)), "no download"
    assert _skopeo_inspect(registry.ref("rc/reuse"), "--raw") == before
    # One layer dropped, one added: the new layer and the new config are uploaded, not the reused one.
    tar_c = tar_bytes(f("/layers/bp/c/x", b"c" * 100))
    cache = _cache(registry, "rc/reuse")
    mark = registry.mark()
    cache.reuse_layer(SHA_A)
    cache.add_layer(io.BytesIO(tar_c), sha256(tar_c))
    cache.set_metadata(meta(a=SHA_A, c=sha256(tar_c)))
    cache.commit()
    finished = [r for r in _uploads(registry, mark, "rc/reuse") if r[0] == "PUT"]
    assert len(finished) == 2, finished  # the new layer and the new config
    again = _cache(registry, "rc/reuse")
    assert again.metadata() == meta(a=SHA_A, c=sha256(tar_c))
    with again.retrieve_layer(sha256(tar_c)) as stream:
        assert stream.read() == tar_c
    # The previous manifest was deleted by digest (the tag moved on).
    old = subprocess.run([require_tool("skopeo"), "inspect", "--tls-verify=false", "--raw",
                          f"docker://{registry.host}/rc/reuse@{_digest(before)}"], capture_output=True, text=True)
    assert old.returncode != 0


def _digest(manifest: dict[str, object]) -> str:
    return sha256(m.canonical_json(manifest))


def test_mismatched_layer_is_not_reused(registry: Registry, tmp_path: Path) -> None:
    _push_crafted(registry, "rc/bad", tmp_path, SHA_A, TAR_B, meta(a=SHA_A))
    cache = _cache(registry, "rc/bad")
    assert cache.metadata() == meta(a=SHA_A)
    with cache.retrieve_layer(SHA_A) as stream:
        assert stream.read() == TAR_B  # the restorer's hash check refuses it
    with pytest.raises(CacheReadError, match=f"expected layer contents to have SHA '{SHA_A}'"):
        cache.verify_layer(SHA_A)
    # Read (and found bad) in this process: not reused, though the registry has the blob.
    with pytest.raises(CacheReadError, match="could not be read intact earlier in this build"):
        cache.reuse_layer(SHA_A)
    cache.add_layer(io.BytesIO(TAR_A), SHA_A)
    cache.set_metadata(meta(a=SHA_A))
    cache.commit()
    healed = _cache(registry, "rc/bad")
    healed.verify_layer(SHA_A)


def test_missing_blob_is_a_read_error(registry: Registry) -> None:
    first = _first(registry, "rc/gone")
    assert first.previous is None
    cache = _cache(registry, "rc/gone")
    assert cache.previous is not None
    digest = cache._by_diff[SHA_B].digest
    _blob_data(registry, digest).unlink()
    with pytest.raises(CacheReadError, match=f"cache layer with SHA '{SHA_B}'"), \
            cache.retrieve_layer(SHA_B) as stream:
        stream.read()
    with pytest.raises(CacheReadError):
        cache.reuse_layer(SHA_B)


def test_bad_label_and_unreachable_registry_are_empty_caches_with_warning(registry: Registry,
                                                                           tmp_path: Path) -> None:
    layout = Layout(tmp_path / "bad-label")
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": {METADATA_LABEL: "{not json"}},
              "rootfs": {"type": "layers", "diff_ids": []}}
    config_desc = layout.put_blob(m.canonical_json(config), m.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": config_desc.dump(), "layers": []}
    layout.set_tag(layout.put_blob(m.canonical_json(manifest), m.OCI_MANIFEST), "latest")
    _store(registry).push_layout_image(layout.path, "latest", registry.ref("rc/label"))
    log = Recorder()
    cache = _cache(registry, "rc/label", log)
    assert cache.exists()
    assert cache.metadata() == CacheMetadata()
    assert any("using an empty cache" in w for w in log.warnings), log.lines
    log = Recorder()
    store = RegistryStore(insecure_registries=["127.0.0.1:1"])
    cache = RegistryImageCache(store, "127.0.0.1:1/nothing:latest", log)
    assert not cache.exists()
    assert any(w.startswith("Ignoring cache image '127.0.0.1:1/nothing:latest'") for w in log.warnings)
    with pytest.raises(CacheError, match="saving cache image"):
        cache.commit()


def test_opening(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="must be a tag"):
        RegistryImageCache(_store(registry), f"{registry.host}/rc/x@sha256:" + "a" * 64, Recorder())
    settings = Settings({"cache-image": registry.ref("rc/opened"), "insecure-registry": [registry.host]}, {})
    assert isinstance(from_settings(settings, Recorder()), RegistryImageCache)
    daemon = Settings({"cache-image": registry.ref("rc/opened"), "daemon": True}, {})
    with pytest.raises(CacheError, match="not supported with -daemon"):
        from_settings(daemon, Recorder())
    with pytest.raises(CacheError, match="needs an image store"):
        open_cache(cache_dir=str(tmp_path), cache_image="my/cache", image_cache=None, logger=Recorder())


# ---- the creator ----------------------------------------------------------------------------------
def _creator(run: Run, reg: Registry, work: Path, cache_ref: str) -> str:
    res = run("creator", *sample_build_args(work), "-insecure-registry", reg.host, "-run-image",
              f"{reg.host}/library/busybox", "-cache-image", cache_ref, f"{reg.host}/cached-app")
    assert res.returncode == 0, res.stdout
    assert "Traceback" not in res.stdout
    return res.stdout


def _warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Warning:")]


def test_creator_keeps_its_cache_in_the_registry(run: Run, registry: Registry, tmp_path: Path) -> None:
    push_busybox(registry.host)
    cache_ref = f"{registry.host}/cache:latest"
    out = _creator(run, registry, tmp_path, cache_ref)
    assert "Layer cache not found" in out
    assert "samples/hello: building cached layer" in out
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    assert _warnings(out) == []
    inspect = _skopeo_inspect(cache_ref)
    labels = inspect["Labels"]
    assert isinstance(labels, dict)
    cached = json.loads(labels[METADATA_LABEL])["buildpacks"][0]
    assert cached["key"] == "samples/hello"
    layer = cached["layers"]["cache-data"]
    assert layer["cache"] is True and layer["launch"] is False
    first_manifest = _skopeo_inspect(cache_ref, "--raw")
    layers = first_manifest["layers"]
    assert isinstance(layers, list) and [x["mediaType"] for x in layers] == [m.OCI_LAYER_GZIP]
    assert inspect["Layers"] == [layers[0]["digest"]]

    # Second build: restored from the registry, reused, nothing uploaded to the cache repository.
    mark = registry.mark()
    out = _creator(run, registry, tmp_path, cache_ref)
    assert f'Restoring data for "{CACHE_LAYER}" from cache' in out
    assert "samples/hello: reusing cached layer" in out
    assert "samples/hello: building cached layer" not in out
    assert f"Reusing cache layer '{CACHE_LAYER}'" in out
    assert _warnings(out) == []
    # The analyzer's write check opens one upload session and cancels it (upstream's CheckPushPermission);
    # no blob is sent.
    assert [r[0] for r in _uploads(registry, mark, "cache")] == ["POST"]
    assert [r for r in registry.requests_since(mark) if r[0] == "DELETE" and "/v2/cache/blobs/uploads/" in r[1]]
    assert _skopeo_inspect(cache_ref, "--raw") == first_manifest

    # A cache image whose layer bytes do not match its diffID: a warning, the layer is rebuilt and
    # added again (not reused), and the next build is clean.
    crafted_meta = CacheMetadata.model_validate(json.loads(labels[METADATA_LABEL]))
    wrong = tar_bytes(f("/layers/samples_hello/cache-data/checksum", b"not the checksum"))
    _push_crafted(registry, "cache", tmp_path, layer["sha"], wrong, crafted_meta)
    out = _creator(run, registry, tmp_path, cache_ref)
    warnings = _warnings(out)
    assert any(w.startswith(f"Warning: Skipping restore for layer {CACHE_LAYER}: expected layer contents to "
                            f"have SHA '{layer['sha']}'") for w in warnings), out
    assert "samples/hello: building cached layer" in out
    assert any(w.startswith(f"Warning: Skipping reuse for layer {CACHE_LAYER}") for w in warnings), out
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    # The rebuilt layer compresses to the first build's blob, which the repository still holds:
    # found by HEAD, not uploaded; the cache image points at it again.
    assert _skopeo_inspect(cache_ref, "--raw")["layers"] == first_manifest["layers"]

    out = _creator(run, registry, tmp_path, cache_ref)
    assert "samples/hello: reusing cached layer" in out
    assert f"Reusing cache layer '{CACHE_LAYER}'" in out
    assert _warnings(out) == []


def test_creator_rebuilds_a_layer_whose_blob_is_gone(run: Run, registry: Registry, tmp_path: Path) -> None:
    push_busybox(registry.host)
    cache_ref = f"{registry.host}/cache-gone:latest"
    _creator(run, registry, tmp_path, cache_ref)
    raw = _skopeo_inspect(cache_ref, "--raw")
    layers = raw["layers"]
    assert isinstance(layers, list) and len(layers) == 1
    _blob_data(registry, layers[0]["digest"]).unlink()
    out = _creator(run, registry, tmp_path, cache_ref)
    assert any(w.startswith(f"Warning: Skipping restore for layer {CACHE_LAYER}:") for w in _warnings(out)), out
    assert "samples/hello: building cached layer" in out
    out = _creator(run, registry, tmp_path, cache_ref)
    assert "samples/hello: reusing cached layer" in out
    assert _warnings(out) == []


# ---- decision D14: with -oci, -cache-image <ref> is a registry image ------------------------------
def test_oci_build_keeps_its_cache_image_in_the_registry(run: Run, registry: Registry, oci_root: Path,
                                                          tmp_path: Path) -> None:
    cache_ref = f"{registry.host}/team/cache"
    work = tmp_path / "work"

    def build() -> str:
        res = run("creator", "-oci", "-oci-dir", str(oci_root), *sample_build_args(work),
                  "-insecure-registry", registry.host, "-run-image", "busybox", "-cache-image", cache_ref, "my-app")
        assert res.returncode == 0, res.stdout
        assert "Traceback" not in res.stdout and _warnings(res.stdout) == []
        return res.stdout

    out = build()
    assert f"Adding cache layer '{CACHE_LAYER}'" in out
    inspect = _skopeo_inspect(cache_ref)
    labels = inspect["Labels"]
    assert isinstance(labels, dict)
    assert json.loads(labels[METADATA_LABEL])["buildpacks"][0]["key"] == "samples/hello"
    assert not (oci_root / registry.host).exists()  # nothing was written as a layout
    out = build()
    assert f'Restoring data for "{CACHE_LAYER}" from cache' in out
    assert "samples/hello: reusing cached layer" in out
    assert f"Reusing cache layer '{CACHE_LAYER}'" in out


def test_oci_cache_image_layout_form_needs_oci(run: Run, tmp_path: Path) -> None:
    res = run("analyzer", "-layers", str(tmp_path), "-run-image", "busybox", "-cache-image", "oci:my-cache", "my-app")
    assert res.returncode == 3, res.stdout
    assert res.stdout.splitlines()[-1] == ("ERROR: -cache-image oci:my-cache: the oci:<ref> form keeps the cache "
                                           "in an OCI layout and needs -oci")


def test_empty_cache_image_has_one_empty_layer(registry: Registry) -> None:
    from lifecycle.cache.image import EMPTY_TAR, EMPTY_TAR_DIFF_ID

    ref = f"{registry.host}/rc/empty:latest"
    cache = RegistryImageCache(_store(registry), ref, Recorder())
    cache.set_metadata(CacheMetadata())
    cache.commit()
    raw = _skopeo_inspect(ref, "--raw")
    layers = raw["layers"]
    assert isinstance(layers, list) and len(layers) == 1
    config = _skopeo_inspect(ref, "--config")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [EMPTY_TAR_DIFF_ID]}
    import urllib.request

    with urllib.request.urlopen(f"{registry.url}/v2/rc/empty/blobs/{layers[0]['digest']}", timeout=10) as resp:
        blob = resp.read()
    assert gzip.decompress(blob) == EMPTY_TAR
    reopened = RegistryImageCache(_store(registry), ref, Recorder())
    assert reopened.exists() and reopened.metadata() == CacheMetadata()
