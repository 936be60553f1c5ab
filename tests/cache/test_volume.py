"""The volume cache: upstream's directory format, add/reuse/commit, recovery from killed commits."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lifecycle.cache import CacheError, CacheReadError, open_cache
from lifecycle.cache.metadata import METADATA_LABEL, BuildpackLayers, CacheMetadata, LayerMetadata
from lifecycle.cache.volume import VolumeCache
from tests.cache.helpers import Recorder, f, sha256, tar_bytes

TAR_A = tar_bytes(f("/layers/bp/a/file", b"A" * 3000))
TAR_B = tar_bytes(f("/layers/bp/b/file", b"B" * 3000))
SHA_A, SHA_B = sha256(TAR_A), sha256(TAR_B)


def meta(**layers: str) -> CacheMetadata:
    return CacheMetadata(buildpacks=[BuildpackLayers(key="bp", version="1", layers={
        name: LayerMetadata(sha=sha, data={"n": name}, cache=True) for name, sha in layers.items()})])


def committed_cache(directory: Path) -> None:
    cache = VolumeCache(directory, Recorder())
    cache.add_layer(io.BytesIO(TAR_A), SHA_A)
    cache.set_metadata(meta(a=SHA_A))
    cache.commit()


def test_requires_existing_dir(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="failed to create volume cache"):
        VolumeCache(tmp_path / "nope", Recorder())


def test_add_and_commit_upstream_format(tmp_path: Path) -> None:
    committed_cache(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["committed"]  # staging became committed
    assert sorted(os.listdir(tmp_path / "committed")) == sorted([METADATA_LABEL, f"{SHA_A}.tar"])
    assert (tmp_path / "committed" / f"{SHA_A}.tar").read_bytes() == TAR_A
    doc = json.loads((tmp_path / "committed" / METADATA_LABEL).read_text())
    assert doc == {"sbom": {"sha": ""}, "buildpacks": [{"key": "bp", "version": "1", "layers": {
        "a": {"sha": SHA_A, "data": {"n": "a"}, "build": False, "launch": False, "cache": True}}}]}
    assert list(doc["buildpacks"][0]["layers"]["a"]) == ["sha", "data", "build", "launch", "cache"]
    cache = VolumeCache(tmp_path, Recorder())
    assert cache.exists()
    assert cache.metadata() == meta(a=SHA_A)
    cache.verify_layer(SHA_A)
    with cache.retrieve_layer(SHA_A) as stream:
        assert stream.read() == TAR_A


def test_open_wipes_staging_and_backup(tmp_path: Path) -> None:
    committed_cache(tmp_path)
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "junk.tar").write_bytes(b"junk")
    (tmp_path / "committed-backup").mkdir()
    (tmp_path / "committed-backup" / "old").write_text("old")
    VolumeCache(tmp_path, Recorder())
    assert os.listdir(tmp_path / "staging") == []
    assert not (tmp_path / "committed-backup").exists()
    assert (tmp_path / "committed" / f"{SHA_A}.tar").is_file()


def test_reuse_hard_links_and_drops_the_rest(tmp_path: Path) -> None:
    committed_cache(tmp_path)
    cache = VolumeCache(tmp_path, Recorder())
    cache.reuse_layer(SHA_A)
    assert os.stat(tmp_path / "staging" / f"{SHA_A}.tar").st_ino == \
        os.stat(tmp_path / "committed" / f"{SHA_A}.tar").st_ino
    cache.set_metadata(meta(a=SHA_A))
    cache.commit()
    # next build: only b
    cache = VolumeCache(tmp_path, Recorder())
    cache.add_layer(io.BytesIO(TAR_B), SHA_B)
    cache.set_metadata(meta(b=SHA_B))
    cache.commit()
    assert sorted(os.listdir(tmp_path / "committed")) == sorted([METADATA_LABEL, f"{SHA_B}.tar"])
    with pytest.raises(CacheError, match="after commit"):
        cache.add_layer(io.BytesIO(TAR_A), SHA_A)


def test_add_from_path_links_and_stream_is_verified(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    src = tmp_path / "layer.tar"
    src.write_bytes(TAR_B)
    cache = VolumeCache(tmp_path / "cache", Recorder())
    cache.add_layer(src, SHA_B)
    assert os.stat(tmp_path / "cache" / "staging" / f"{SHA_B}.tar").st_ino == os.stat(src).st_ino
    with pytest.raises(CacheError, match="its contents have SHA"):
        cache.add_layer(io.BytesIO(TAR_A), SHA_B.replace("sha256:", "sha256:0")[:71])
    with pytest.raises(CacheError, match="its contents have SHA"):
        cache.add_layer(io.BytesIO(TAR_A), "sha256:" + "0" * 64)
    assert sorted(os.listdir(tmp_path / "cache" / "staging")) == [f"{SHA_B}.tar"]
    with pytest.raises(CacheError, match="invalid layer diffID"):
        cache.add_layer(io.BytesIO(TAR_A), "../../etc/passwd")


def test_corrupt_layer_fails_verify_and_reuse(tmp_path: Path) -> None:
    committed_cache(tmp_path)
    tar = tmp_path / "committed" / f"{SHA_A}.tar"
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    cache = VolumeCache(tmp_path, Recorder())
    with pytest.raises(CacheReadError, match=f"expected layer contents to have SHA '{SHA_A}'; found"):
        cache.verify_layer(SHA_A)
    with pytest.raises(CacheReadError):
        cache.reuse_layer(SHA_A)
    assert not (tmp_path / "staging" / f"{SHA_A}.tar").exists()
    tar.unlink()
    with pytest.raises(CacheReadError, match=f"failed to find cache layer with SHA '{SHA_A}'"):
        cache.verify_layer(SHA_A)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"buildpacks": 7}'])
def test_bad_metadata_is_an_empty_cache_with_warning(tmp_path: Path, content: bytes) -> None:
    committed_cache(tmp_path)
    (tmp_path / "committed" / METADATA_LABEL).write_bytes(content)
    log = Recorder()
    assert VolumeCache(tmp_path, log).metadata() == CacheMetadata()
    assert len(log.warnings) == 1 and "using an empty cache" in log.warnings[0]


def test_missing_metadata_is_empty_without_warning(tmp_path: Path) -> None:
    log = Recorder()
    assert VolumeCache(tmp_path, log).metadata() == CacheMetadata()
    assert log.warnings == []


def test_null_slices_from_go(tmp_path: Path) -> None:
    committed_cache(tmp_path)
    (tmp_path / "committed" / METADATA_LABEL).write_text(
        '{"sbom":{"sha":""},"buildpacks":[{"key":"bp","version":"1","layers":null}]}')
    assert VolumeCache(tmp_path, Recorder()).metadata().for_buildpack("bp").layers == {}
    (tmp_path / "committed" / METADATA_LABEL).write_text('{"sbom":null,"buildpacks":null}')
    assert VolumeCache(tmp_path, Recorder()).metadata() == CacheMetadata()


def test_open_cache_picks_image_over_dir(tmp_path: Path) -> None:
    assert open_cache(cache_dir=None, cache_image=None, image_cache=None, logger=Recorder()) is None
    assert isinstance(open_cache(cache_dir=str(tmp_path), cache_image="", image_cache=None, logger=Recorder()),
                      VolumeCache)
    with pytest.raises(CacheError, match="needs an image store"):
        open_cache(cache_dir=str(tmp_path), cache_image="my/cache", image_cache=None, logger=Recorder())


def test_failed_second_rename_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    committed_cache(tmp_path)
    cache = VolumeCache(tmp_path, Recorder())
    cache.add_layer(io.BytesIO(TAR_B), SHA_B)
    cache.set_metadata(meta(b=SHA_B))

    def boom() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lifecycle.cache.volume.between_renames", boom)
    with pytest.raises(CacheError, match="committing cache"):
        cache.commit()
    assert VolumeCache(tmp_path, Recorder()).metadata() == meta(a=SHA_A)
    assert not (tmp_path / "committed-backup").exists()


CHILD = textwrap.dedent("""
    import io, sys, time, os
    from pathlib import Path
    from lifecycle.cache import volume
    from lifecycle.cache.metadata import CacheMetadata, BuildpackLayers, LayerMetadata

    class Quiet:
        def __getattr__(self, name):
            return lambda *a, **k: None

    directory, mode = Path(sys.argv[1]), sys.argv[2]
    marker = directory.parent / "marker"

    def one_build(generation):
        cache = volume.VolumeCache(directory, Quiet())
        layers = {}
        for name in ("x", "y"):
            data = (f"{name}-{generation}-".encode() * 200000)[: 1_000_000 + generation]
            sha = "sha256:" + __import__("hashlib").sha256(data).hexdigest()
            cache.add_layer(io.BytesIO(data), sha)
            layers[name] = LayerMetadata(sha=sha, data={"generation": generation}, cache=True)
        cache.set_metadata(CacheMetadata(buildpacks=[BuildpackLayers(key="bp", version="1", layers=layers)]))
        if mode == "pause":
            def pause():
                marker.write_text("between renames")
                time.sleep(120)
            volume.between_renames = pause
        cache.commit()
        if mode == "loop":
            (directory.parent / f"done-{generation}").write_text("")

    if mode in ("pause", "once"):
        one_build(int(sys.argv[3]))
    else:
        generation = int(sys.argv[3])
        (directory.parent / "ready").write_text("")
        while True:
            generation += 1
            one_build(generation)
""")


def _generation_and_check(directory: Path) -> int:
    cache = VolumeCache(directory, Recorder())
    md = cache.metadata()
    layers = md.for_buildpack("bp").layers
    if not layers:
        return 0
    gens = {lm.data["generation"] for lm in layers.values()}
    assert len(gens) == 1, "metadata mixes two commits"
    for lm in layers.values():
        cache.verify_layer(lm.sha)  # every layer the metadata names is there, intact
    return int(gens.pop())


def _spawn(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), *args], cwd=str(Path(__file__).parents[2]))


def test_sigkill_between_the_two_renames_keeps_previous_cache(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    proc = _spawn(tmp_path, str(directory), "once", "1")
    proc.wait(timeout=60)
    assert proc.returncode == 0
    assert _generation_and_check(directory) == 1
    proc = _spawn(tmp_path, str(directory), "pause", "2")
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "marker").exists():
            assert time.monotonic() < deadline, "child never reached the commit"
            assert proc.poll() is None, "child exited early"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert not (directory / "committed").exists(), "killed after the first rename"
    assert (directory / "committed-backup").is_dir()
    assert _generation_and_check(directory) == 1, "the previous committed cache is back"
    assert not (directory / "committed-backup").exists()
    assert os.listdir(directory / "staging") == []


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    rng = random.Random(1234)
    generation = 0
    for round_ in range(12):
        for stale in tmp_path.glob("ready"):
            stale.unlink()
        proc = _spawn(tmp_path, str(directory), "loop", str(generation))
        try:
            # The kill window starts once the child is past its imports (slow on a loaded machine);
            # the first round also waits for one finished commit, so the test never depends on speed.
            wait_for = tmp_path / ("ready" if round_ else f"done-{generation + 1}")
            deadline = time.monotonic() + 120
            while not wait_for.exists():
                assert time.monotonic() < deadline, f"child never wrote {wait_for.name}"
                assert proc.poll() is None, "child exited early"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.3, 1.2))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        now = _generation_and_check(directory)
        assert now >= generation, "a committed cache never goes back"
        generation = now
    assert generation > 0, "no commit ever finished; the kill window is too short"
