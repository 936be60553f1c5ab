"""The restorer: restoration matrix, bad cached bytes, hostile tars, and the console script."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lifecycle.api import ApiVersion
from lifecycle.cache.image import ImageCache
from lifecycle.cache.metadata import METADATA_LABEL
from lifecycle.cache.volume import VolumeCache
from lifecycle.image.store import LayoutStore
from lifecycle.layers.tar import write_layer_tar
from lifecycle.phases.cache_export import export_cache
from lifecycle.phases.restorer import RestoreInputs, restore
from tests.cache.helpers import Group, Recorder, f, sha256, snapshot, tar_bytes, write_layer
from tests.conftest import Run, base_env

BP = "acme/node"
BP_DIR = "acme_node"
GROUP = [Group(BP, "1.2.3")]
API_15 = ApiVersion(0, 15)


def _diff_id(layer: Path) -> str:
    return write_layer_tar(layer, io.BytesIO(), uid=0, gid=0)


class World:
    """A layers dir built as the builder would leave it, exported to a cache, then wiped."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.layers = tmp_path / "layers"
        self.cache_dir = tmp_path / "cache"
        self.cache_dir.mkdir()
        self.app: dict[str, Any] = {"buildpacks": [{"key": BP, "version": "1.2.3", "layers": {}}]}

    def layer(self, name: str, *, build: bool, cache: bool, launch: bool, in_app: bool = True) -> None:
        layer = write_layer(self.layers, BP, name, build=build, cache=cache, launch=launch,
                            files={"bin/tool": f"tool {name}"}, data="from-cache")
        if in_app:
            self.app["buildpacks"][0]["layers"][name] = {
                "sha": _diff_id(layer), "build": build, "launch": launch, "cache": cache,
                "metadata": {"version": "from-app"}}

    def export(self) -> None:
        export_cache(VolumeCache(self.cache_dir, Recorder()), self.layers, GROUP, 0, 0, Recorder())
        shutil.rmtree(self.layers)
        self.layers.mkdir()

    def restore(self, *, api: ApiVersion = API_15, skip: bool = False, uid: int = 0,
                gid: int = 0) -> Recorder:
        log = Recorder()
        inputs = RestoreInputs(layers_dir=self.layers, group=GROUP, layers_metadata=self.app,
                               skip_layers=skip, uid=uid, gid=gid, platform_api=api)
        restore(inputs, VolumeCache(self.cache_dir, log), log)
        return log

    def toml(self, name: str) -> dict[str, Any] | None:
        path = self.layers / BP_DIR / f"{name}.toml"
        return tomllib.loads(path.read_text()) if path.exists() else None

    def contents(self, name: str) -> str | None:
        path = self.layers / BP_DIR / name / "bin" / "tool"
        return path.read_text() if path.exists() else None

    def committed_tar(self, name: str) -> Path:
        doc = json.loads((self.cache_dir / "committed" / METADATA_LABEL).read_text())
        return self.cache_dir / "committed" / f"{doc['buildpacks'][0]['layers'][name]['sha']}.tar"

    def leftovers(self) -> list[str]:
        bp_dir = self.layers / BP_DIR
        return [p.name for p in bp_dir.iterdir() if p.name.startswith(".restore-")] if bp_dir.exists() else []


# build, cache, launch -> metadata source ("app" / "cache" / None), contents restored
MATRIX = [
    (True, True, True, "from-app", True),
    (True, True, False, "from-cache", True),
    (True, False, True, None, False),
    (True, False, False, None, False),
    (False, True, True, "from-app", True),
    (False, True, False, "from-cache", True),
    (False, False, True, "from-app", False),
    (False, False, False, None, False),
]


@pytest.mark.parametrize(("build", "cache", "launch", "meta", "data"), MATRIX,
                         ids=[f"b{b:d}c{c:d}l{lch:d}" for b, c, lch, _, _ in MATRIX])
def test_restoration_matrix(tmp_path: Path, build: bool, cache: bool, launch: bool, meta: str | None,
                            data: bool) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=build, cache=cache, launch=launch)
    world.export()
    log = world.restore()
    toml = world.toml("lyr")
    if meta is None:
        assert toml is None
    else:
        assert toml == {"metadata": {"version": meta}}, "only [metadata], no [types]"
    assert world.contents("lyr") == ("tool lyr" if data else None)
    assert log.warnings == []
    assert world.leftovers() == []


def test_all_combinations_at_once(tmp_path: Path) -> None:
    world = World(tmp_path)
    for build, cache, launch, _, _ in MATRIX:
        world.layer(f"b{build:d}c{cache:d}l{launch:d}", build=build, cache=cache, launch=launch)
    world.export()
    log = world.restore()
    for build, cache, launch, meta, data in MATRIX:
        name = f"b{build:d}c{cache:d}l{launch:d}"
        assert (world.toml(name) or {}).get("metadata", {}).get("version") == meta, name
        assert (world.contents(name) is not None) == data, name
    assert 'Restoring data for "acme/node:b1c1l1" from cache' in log.infos
    assert 'Restoring metadata for "acme/node:b0c0l1" from app image' in log.infos
    assert 'Restoring metadata for "acme/node:b0c1l0" from cache' in log.infos


def test_launch_cache_layer_missing_from_cache(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=False, cache=True, launch=True)
    world.export()
    shutil.rmtree(world.cache_dir)
    world.cache_dir.mkdir()
    world.restore()
    assert world.toml("lyr") is None, "cache=true but not in the cache: the buildpack must rebuild"


@pytest.mark.parametrize(("api", "restored"), [(ApiVersion(0, 13), False), (ApiVersion(0, 14), True)])
def test_launch_layer_only_in_cache(tmp_path: Path, api: ApiVersion, restored: bool) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=False, cache=True, launch=True, in_app=False)
    world.export()
    world.restore(api=api)
    assert (world.toml("lyr") is not None) == restored
    assert (world.contents("lyr") is not None) == restored


def test_app_and_cache_sha_disagree(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=False, cache=True, launch=True)
    world.app["buildpacks"][0]["layers"]["lyr"]["sha"] = "sha256:" + "0" * 64
    world.export()
    log = world.restore()
    assert 'Removing "acme/node:lyr", wrong sha' in log.infos
    assert world.toml("lyr") is None and world.contents("lyr") is None


def test_store_toml_and_skip_layers(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.app["buildpacks"][0]["store"] = {"metadata": {"counter": 3, "nested": {"a": "b"}}}
    world.export()
    log = world.restore(skip=True)
    store = tomllib.loads((world.layers / BP_DIR / "store.toml").read_text())
    assert store == {"metadata": {"counter": 3, "nested": {"a": "b"}}}
    assert "Skipping buildpack layer analysis" in log.infos
    assert world.toml("lyr") is None and world.contents("lyr") is None
    world.restore()
    assert world.contents("lyr") == "tool lyr"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_ownership(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.app["buildpacks"][0]["store"] = {"metadata": {"x": 1}}
    world.export()
    world.restore(uid=4321, gid=5432)
    bp_dir = world.layers / BP_DIR
    for path in (bp_dir, bp_dir / "lyr", bp_dir / "lyr" / "bin", bp_dir / "lyr" / "bin" / "tool",
                 bp_dir / "lyr.toml", bp_dir / "store.toml"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (4321, 5432), path


def _flip(offset: int) -> Any:
    def corrupt(tar: Path) -> None:
        data = bytearray(tar.read_bytes())
        data[offset] ^= 0x20
        tar.write_bytes(bytes(data))
    return corrupt


def _find_content(tar: Path) -> int:
    return tar.read_bytes().index(b"tool good")


CORRUPTIONS = {
    "flipped-content-byte": (lambda t: _flip(_find_content(t))(t), "expected layer contents to have SHA"),
    "flipped-header-byte": (_flip(100), "expected layer contents to have SHA"),
    "truncated": (lambda t: t.write_bytes(t.read_bytes()[: t.stat().st_size // 2]),
                  "expected layer contents to have SHA"),
    "missing-blob": (lambda t: t.unlink(), "failed to find cache layer with SHA"),
    "emptied": (lambda t: t.write_bytes(b""), "expected layer contents to have SHA"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_cache_layer_is_skipped(tmp_path: Path, case: str) -> None:
    world = World(tmp_path)
    write_layer(world.layers, BP, "good", build=True, cache=True, files={"bin/tool": "tool good"})
    write_layer(world.layers, BP, "other", build=True, cache=True, files={"bin/tool": "tool other"})
    world.export()
    corrupt, message = CORRUPTIONS[case]
    corrupt(world.committed_tar("good"))
    log = world.restore()
    assert len(log.warnings) == 1
    assert log.warnings[0].startswith("Skipping restore for layer acme/node:good: ")
    assert message in log.warnings[0]
    assert world.toml("good") is None, "metadata is not restored either: the buildpack rebuilds"
    assert not (world.layers / BP_DIR / "good").exists()
    assert world.contents("other") == "tool other", "the other layer is unaffected"
    assert world.leftovers() == []


@pytest.mark.parametrize("content", [b"not json at all", b"", b'{"buildpacks": "nope"}'])
def test_bad_cache_metadata_restores_nothing_from_cache(tmp_path: Path, content: bytes) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.layer("app-only", build=False, cache=False, launch=True)
    world.export()
    (world.cache_dir / "committed" / METADATA_LABEL).write_bytes(content)
    log = world.restore()
    if content:
        assert any("using an empty cache" in w for w in log.warnings)
    assert world.toml("lyr") is None and world.contents("lyr") is None
    assert world.toml("app-only") == {"metadata": {"version": "from-app"}}


def test_hostile_cached_tar_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.export()
    prefix = str(world.layers / BP_DIR / "lyr")
    evil = tar_bytes(f(f"{prefix}/ok", b"fine"), f(f"{prefix}/../../../escaped", b"evil"))
    old = world.committed_tar("lyr")
    meta_path = world.cache_dir / "committed" / METADATA_LABEL
    doc = json.loads(meta_path.read_text())
    doc["buildpacks"][0]["layers"]["lyr"]["sha"] = sha256(evil)
    meta_path.write_text(json.dumps(doc))
    old.unlink()
    (world.cache_dir / "committed" / f"{sha256(evil)}.tar").write_bytes(evil)
    VolumeCache(world.cache_dir, Recorder())  # opening (re)creates staging/
    before = snapshot(tmp_path, exclude=world.layers / BP_DIR)
    log = world.restore()
    assert len(log.warnings) == 1
    assert f"refusing to extract '{prefix}/../../../escaped': path contains '..'" in log.warnings[0]
    assert not (tmp_path / "escaped").exists()
    assert snapshot(tmp_path, exclude=world.layers / BP_DIR) == before
    assert world.toml("lyr") is None and not (world.layers / BP_DIR / "lyr").exists()
    assert world.leftovers() == []


def test_sbom_from_cache(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    sbom = world.layers / "sbom" / "cache" / BP_DIR / "lyr"
    sbom.mkdir(parents=True)
    (sbom / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX"}')
    world.export()
    log = world.restore()
    assert "Restoring data for SBOM from cache" in log.infos
    assert (world.layers / BP_DIR / "lyr.sbom.cdx.json").read_text() == '{"bomFormat": "CycloneDX"}'
    assert not (world.layers / "sbom").exists()


def test_image_cache_restore(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.layer("launchy", build=False, cache=True, launch=True)
    store = LayoutStore(tmp_path / "oci")
    export_cache(ImageCache(store, "cache", Recorder()), world.layers, GROUP, 0, 0, Recorder())
    shutil.rmtree(world.layers)
    world.layers.mkdir()
    log = Recorder()
    inputs = RestoreInputs(layers_dir=world.layers, group=GROUP, layers_metadata=world.app)
    restore(inputs, ImageCache(store, "cache", log), log)
    assert log.warnings == []
    assert world.contents("lyr") == "tool lyr" and world.contents("launchy") == "tool launchy"
    assert world.toml("launchy") == {"metadata": {"version": "from-app"}}


# ---- the console script ----------------------------------------------------------------------
def _platform_files(world: World) -> tuple[Path, Path]:
    group = world.root / "group.toml"
    group.write_text(f'[[group]]\nid = "{BP}"\nversion = "1.2.3"\napi = "0.10"\n')
    analyzed = world.root / "analyzed.toml"
    layer = world.app["buildpacks"][0]["layers"]["launchy"]
    analyzed.write_text(
        '[image]\nreference = ""\n\n[metadata]\n[[metadata.buildpacks]]\n'
        f'key = "{BP}"\nversion = "1.2.3"\n'
        f'[metadata.buildpacks.layers.launchy]\nsha = "{layer["sha"]}"\nlaunch = true\nbuild = false\n'
        'cache = true\n[metadata.buildpacks.layers.launchy.metadata]\nversion = "from-app"\n'
        '[metadata.buildpacks.store.metadata]\nruns = 7\n\n'
        '[run-image]\nreference = "busybox"\n')
    return group, analyzed


def test_console_script(run: Run, tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.layer("launchy", build=False, cache=True, launch=True)
    world.export()
    group, analyzed = _platform_files(world)
    res = run("restorer", "-layers", str(world.layers), "-group", str(group), "-analyzed", str(analyzed),
              "-cache-dir", str(world.cache_dir))
    assert res.returncode == 0, res.stdout
    assert 'Restoring data for "acme/node:lyr" from cache' in res.stdout
    assert "Warning" not in res.stdout and "ERROR" not in res.stdout
    assert world.contents("lyr") == "tool lyr" and world.contents("launchy") == "tool launchy"
    assert world.toml("launchy") == {"metadata": {"version": "from-app"}}
    assert world.toml("lyr") == {"metadata": {"version": "from-cache"}}
    assert tomllib.loads((world.layers / BP_DIR / "store.toml").read_text()) == {"metadata": {"runs": 7}}


def test_console_script_env_and_corruption(run: Run, tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.layer("launchy", build=False, cache=True, launch=True)
    world.export()
    group, analyzed = _platform_files(world)
    _flip(-600)(world.committed_tar("lyr"))
    env = base_env(CNB_LAYERS_DIR=str(world.layers), CNB_GROUP_PATH=str(group),
                   CNB_ANALYZED_PATH=str(analyzed), CNB_CACHE_DIR=str(world.cache_dir))
    res = run("restorer", env=env)
    assert res.returncode == 0, res.stdout
    assert "Warning: Skipping restore for layer acme/node:lyr: expected layer contents to have SHA" in res.stdout
    assert world.toml("lyr") is None and world.contents("launchy") == "tool launchy"


def test_console_script_failures(run: Run, tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("launchy", build=False, cache=True, launch=True)
    group, analyzed = _platform_files(world)
    res = run("restorer", "-layers", str(world.layers), "-group", str(group), "-analyzed", str(analyzed),
              "-cache-dir", str(tmp_path / "no-such-cache"))
    assert res.returncode == 42, res.stdout
    assert "ERROR: failed to create volume cache" in res.stdout
    assert "Traceback" not in res.stdout
    res = run("restorer", "-layers", str(world.layers), "-group", str(group), "extra")
    assert res.returncode == 3
    res = run("restorer", "-layers", str(world.layers), "-group", str(group), "-analyzed",
              str(tmp_path / "missing.toml"))
    assert res.returncode == 0, res.stdout
    assert "Warning: Not using analyzed data, usable file not found" in res.stdout
    assert "Warning: No cached data will be used, no cache specified." in res.stdout


def test_console_script_cache_image(run: Run, tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.layer("launchy", build=False, cache=True, launch=True)
    oci = tmp_path / "oci"
    export_cache(ImageCache(LayoutStore(oci), "my/cache:v1", Recorder()), world.layers, GROUP, 0, 0, Recorder())
    assert (oci / "index.docker.io" / "my" / "cache" / "v1" / "index.json").is_file()
    shutil.rmtree(world.layers)
    world.layers.mkdir()
    group, analyzed = _platform_files(world)
    res = run("restorer", "-oci", "-oci-dir", str(oci), "-cache-image", "oci:my/cache:v1", "-layers",
              str(world.layers), "-group", str(group), "-analyzed", str(analyzed))
    assert res.returncode == 0, res.stdout
    assert world.contents("lyr") == "tool lyr" and world.contents("launchy") == "tool launchy"
    res = run("restorer", "-daemon", "-cache-image", "my/cache:v1", "-layers", str(world.layers), "-group",
              str(group))
    assert res.returncode == 42 and "-cache-image is not supported with -daemon" in res.stdout


def test_tar_member_names_match_restore_prefix(tmp_path: Path) -> None:
    """The cache tar's entries are named by the layer's absolute path (what the restorer maps)."""
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.export()
    with tarfile.open(world.committed_tar("lyr")) as tar:
        assert f"{world.layers}/{BP_DIR}/lyr/bin/tool" in tar.getnames()


def test_layer_names_from_metadata_cannot_escape(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.layer("lyr", build=True, cache=True, launch=False)
    world.export()
    meta_path = world.cache_dir / "committed" / METADATA_LABEL
    doc = json.loads(meta_path.read_text())
    entry = doc["buildpacks"][0]["layers"]["lyr"]
    doc["buildpacks"][0]["layers"] = {"../../escape": entry, "..": entry, "lyr": entry}
    meta_path.write_text(json.dumps(doc))
    world.app["buildpacks"][0]["layers"] = {"../app-escape": {"launch": True, "sha": "", "metadata": {}}}
    stale = world.layers / BP_DIR / ".restore-lyr-killed"
    stale.mkdir(parents=True)
    log = world.restore()
    assert sorted(w for w in log.warnings if "invalid layer name" in w) == [
        "Ignoring layer 'acme/node:..' in metadata: invalid layer name",
        "Ignoring layer 'acme/node:../../escape' in metadata: invalid layer name",
        "Ignoring layer 'acme/node:../app-escape' in metadata: invalid layer name"]
    assert not (tmp_path / "escape.toml").exists() and not (tmp_path / "escape").exists()
    assert not (world.layers / "app-escape.toml").exists()
    assert world.contents("lyr") == "tool lyr"
    assert not stale.exists(), "a killed restorer's temp dir is cleaned up"
