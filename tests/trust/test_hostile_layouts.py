"""Hostile layouts: input layouts whose files are symlinks (to the same or another file system),
FIFOs, devices, huge sparse files, deeply nested or wrongly typed JSON, or whose directory is a
symlink out of the layout root. Each gives one ``ERROR:`` line with the documented exit code, never
a hang, never a traceback, and leaves nothing new on disk (spec/trust-model.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_LAYER, BUSYBOX_MANIFEST, LAYOUT_REPO, base_env, run_program
from tests.e2e.conftest import APPS, BUILDPACKS, ORDER
from tests.image.layouts import blob_file

BUSYBOX_PATH = "index.docker.io/library/busybox/latest"
CONFIG = "sha256:9d5226e6ce3fb6aee2822206a5ef85f38c303d2b37bfc894b419fca2c0501269"
SHM = Path("/dev/shm")  # tmpfs: another file system than /tmp's
DEEP = b"[" * 200_000 + b"]" * 200_000
Damage = Callable[[Path, Path], None]  # (busybox layout dir, a scratch dir outside the root)


def _state(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry: (mode, size, inode, sha256 of small regular files); never opens a FIFO/device."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode) and st.st_blocks * 512 < (64 << 20):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[path] = (st.st_mode, st.st_size, st.st_ino, digest)
    return out


def _replace(rel: str, make: Callable[[Path, Path], None]) -> Damage:
    def damage(layout: Path, scratch: Path) -> None:
        path = layout / rel
        path.unlink()
        make(path, scratch)
    return damage


def _symlink_to_copy(where: Path | None = None) -> Callable[[Path, Path], None]:
    """The file becomes a symlink to a byte-identical copy elsewhere (same fs, or ``where``)."""
    def make(path: Path, scratch: Path) -> None:
        target = (where or scratch) / f"copy-{path.name}-{os.getpid()}"
        shutil.copyfile(LAYOUT_REPO / BUSYBOX_PATH / path.relative_to(path.parents[len(path.parts) - 1]), target)
        path.symlink_to(target)
    return make


def _symlink_to(layout_rel: str, where: Path | None = None) -> Damage:
    def damage(layout: Path, scratch: Path) -> None:
        path = layout / layout_rel
        target = (where or scratch) / f"copy-{path.name}-{os.getpid()}"
        shutil.copyfile(path, target)
        path.unlink()
        path.symlink_to(target)
    return damage


def _fifo(rel: str) -> Damage:
    return _replace(rel, lambda path, _s: os.mkfifo(path))


def _device(rel: str) -> Damage:
    return _replace(rel, lambda path, _s: os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5)))  # /dev/zero


def _directory(rel: str) -> Damage:
    return _replace(rel, lambda path, _s: path.mkdir())


def _sparse(rel: str) -> Damage:
    def make(path: Path, _s: Path) -> None:
        with path.open("wb") as f:
            f.truncate(3 << 30)
    return _replace(rel, make)


def _content(rel: str, data: bytes) -> Damage:
    return _replace(rel, lambda path, _s: path.write_bytes(data))


def _blob(digest: str) -> str:
    return str(blob_file(Path(), digest))


def _rewrite_manifest(edit: Callable[[dict[str, object]], object]) -> Damage:
    """Store an edited manifest (valid digest) and point index.json at it."""
    def damage(layout: Path, _s: Path) -> None:
        manifest = json.loads(blob_file(layout, BUSYBOX_MANIFEST).read_bytes())
        data = json.dumps(edit(manifest)).encode() if not isinstance(edit(manifest), bytes) else edit(manifest)
        assert isinstance(data, bytes)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blob_file(layout, digest).write_bytes(data)
        index = json.loads((layout / "index.json").read_bytes())
        index["manifests"][0].update(digest=digest, size=len(data))
        (layout / "index.json").write_text(json.dumps(index))
    return damage


def _rewrite_config(data: bytes) -> Damage:
    """Store ``data`` as the config (valid digest), and a manifest and index pointing at it."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def edit(manifest: dict[str, object]) -> object:
        return {**manifest, "config": {**manifest["config"], "digest": digest, "size": len(data)}}  # type: ignore[dict-item]

    def damage(layout: Path, scratch: Path) -> None:
        blob_file(layout, digest).write_bytes(data)
        _rewrite_manifest(edit)(layout, scratch)
    return damage


def _blobs_elsewhere(layout: Path, scratch: Path) -> None:
    shutil.move(layout / "blobs", scratch / "blobs")
    (layout / "blobs").symlink_to(scratch / "blobs")


ANALYZER_CASES: dict[str, tuple[Damage, str]] = {
    "index.json symlink, same fs": (_symlink_to("index.json"), "is a symlink"),
    "index.json symlink, other fs": (_symlink_to("index.json", SHM), "is a symlink"),
    "index.json FIFO": (_fifo("index.json"), "is a FIFO"),
    "index.json device": (_device("index.json"), "is a character device"),
    "index.json directory": (_directory("index.json"), "not a regular file"),
    "index.json sparse 3 GiB": (_sparse("index.json"), "is larger than"),
    "index.json nested deeply": (_content("index.json", DEEP), "index.json is not valid JSON"),
    "index.json wrong types": (_content("index.json", b'{"schemaVersion": "2", "manifests": [{"digest": 5}]}'),
                               "index.json is not valid"),
    "oci-layout FIFO": (_fifo("oci-layout"), "is a FIFO"),
    "oci-layout symlink": (_symlink_to("oci-layout"), "is a symlink"),
    "oci-layout sparse 3 GiB": (_sparse("oci-layout"), "is larger than 4096 bytes"),
    "oci-layout nested deeply": (_content("oci-layout", DEEP), "is larger than 4096 bytes"),
    "oci-layout nested deeply, small": (_content("oci-layout", b"[" * 2000 + b"]" * 2000), "invalid oci-layout file"),
    "oci-layout wrong type": (_content("oci-layout", b"[]"), "invalid oci-layout file"),
    "manifest blob symlink, same fs": (_symlink_to(_blob(BUSYBOX_MANIFEST)), "is a symlink"),
    "manifest blob symlink, other fs": (_symlink_to(_blob(BUSYBOX_MANIFEST), SHM), "is a symlink"),
    "manifest blob FIFO": (_fifo(_blob(BUSYBOX_MANIFEST)), "is a FIFO"),
    "manifest blob device": (_device(_blob(BUSYBOX_MANIFEST)), "is a character device"),
    "manifest blob sparse 3 GiB": (_sparse(_blob(BUSYBOX_MANIFEST)), "is larger than 527 bytes"),
    "manifest nested deeply": (_rewrite_manifest(lambda _m: DEEP), "is not valid JSON"),
    "manifest wrong types": (_rewrite_manifest(lambda m: {**m, "layers": "x"}), "is not valid"),
    "config blob symlink, other fs": (_symlink_to(_blob(CONFIG), SHM), "is a symlink"),
    "config blob FIFO": (_fifo(_blob(CONFIG)), "is a FIFO"),
    "config blob sparse 3 GiB": (_sparse(_blob(CONFIG)), "is larger than 1457 bytes"),
    "config nested deeply": (_rewrite_config(b'{"os": "linux", "rootfs": ' + DEEP + b"}"), "is not valid"),
    "config wrong types": (_rewrite_config(b'{"os": "linux", "rootfs": {"diff_ids": 5}}'), "is not valid"),
    "blobs dir symlink": (_blobs_elsewhere, "is a symlink"),
}


@pytest.fixture
def world() -> Iterator[tuple[Path, Path]]:
    """(layout root with busybox, scratch dir outside it); /dev/shm copies removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="lifecycle-hostile-layout-"))
    before = _shm_mine()
    try:
        shutil.copytree(LAYOUT_REPO, base / "oci", symlinks=True)
        (base / "scratch").mkdir()
        yield base / "oci", base / "scratch"
    finally:
        for path in _shm_mine() - before:
            path.unlink()
        shutil.rmtree(base, ignore_errors=True)


def _shm_mine() -> set[Path]:
    """This worker's files in /dev/shm (other tests run in parallel)."""
    return {p for p in SHM.iterdir() if p.name.endswith(f"-{os.getpid()}")}


def _one_error(out: str, code: int, want_code: int, message: str) -> str:
    assert code == want_code, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, out
    assert message in errors[0], out
    assert "Traceback" not in out and "MemoryError" not in out
    return errors[0]


@pytest.mark.parametrize("case", list(ANALYZER_CASES))
def test_analyzer_refuses_hostile_run_image_layout(world: tuple[Path, Path], case: str) -> None:
    root, scratch = world
    damage, message = ANALYZER_CASES[case]
    damage(root / BUSYBOX_PATH, scratch)
    before, shm_before = _state(root.parent), _shm_mine()
    analyzed = root.parent / "layers" / "analyzed.toml"
    res = run_program("analyzer", "-oci", "-oci-dir", str(root), "-analyzed", str(analyzed),
                      "-run-image", "busybox", "my-app", env=base_env(), timeout=60)
    line = _one_error(res.stdout, res.returncode, 32, message)
    assert line.startswith("ERROR: failed to analyze: reading run image: "), line
    assert _state(root.parent) == before and _shm_mine() == shm_before


def test_symlinked_layout_dir_is_outside_the_root(world: tuple[Path, Path]) -> None:
    root, scratch = world
    layout = root / BUSYBOX_PATH
    shutil.move(layout, scratch / "busybox")
    layout.symlink_to(scratch / "busybox")
    before = _state(root.parent)
    res = run_program("analyzer", "-oci", "-oci-dir", str(root), "-analyzed", str(root.parent / "a.toml"),
                      "-run-image", "busybox", "my-app", env=base_env(), timeout=60)
    _one_error(res.stdout, res.returncode, 3, "resolves outside the layout directory")
    assert _state(root.parent) == before


@pytest.mark.parametrize("where", ["same fs", "other fs", "fifo", "sparse 3 GiB", "corrupt copy"])
def test_exporter_refuses_hostile_layer_blob(world: tuple[Path, Path], where: str) -> None:
    """The run image's layer blob is what the exporter links or copies into the output: a symlink
    (to a byte-identical copy, on this or another file system), a FIFO, a huge sparse file or wrong
    bytes is refused before anything is published, and the layout root is as it was: the new layers'
    blobs, `oci-layout` and the output's directories are taken back."""
    root, scratch = world
    layer = blob_file(root / BUSYBOX_PATH, BUSYBOX_LAYER)
    if where in ("same fs", "other fs"):
        _symlink_to(_blob(BUSYBOX_LAYER), SHM if where == "other fs" else None)(root / BUSYBOX_PATH, scratch)
    elif where == "fifo":
        layer.unlink()
        os.mkfifo(layer)
    elif where == "sparse 3 GiB":
        with layer.open("r+b") as f:
            f.truncate(3 << 30)
    else:
        with layer.open("r+b") as f:
            f.seek(1000)
            f.write(b"tampered")
    base = root.parent
    shutil.copytree(APPS / "hello", base / "app")
    (base / "layers").mkdir()
    before = {p: s for p, s in _state(root).items()}
    res = run_program("creator", "-oci", "-oci-dir", str(root), "-layers", str(base / "layers"),
                      "-app", str(base / "app"), "-buildpacks", str(BUILDPACKS), "-order", str(ORDER),
                      "-run-image", "busybox", "my-app", env=base_env(), timeout=300)
    message = {"same fs": "is a symlink", "other fs": "is a symlink", "fifo": "is a FIFO",
               "sparse 3 GiB": "is corrupt", "corrupt copy": "is corrupt"}[where]
    _one_error(res.stdout, res.returncode, 62, message)
    assert _state(root) == before  # the input layout as it was, and nothing new: no blob, no directory


def test_failed_export_over_an_earlier_image_takes_back_only_its_own_blobs(world: tuple[Path, Path]) -> None:
    """A second build whose run image turned hostile fails; the earlier image stays tagged with all
    its blobs, and the new app layer's blob (written before the run image was refused) is gone."""
    root, _scratch = world
    base = root.parent
    shutil.copytree(APPS / "hello", base / "app")
    args = ["-oci", "-oci-dir", str(root), "-layers", str(base / "layers"), "-app", str(base / "app"),
            "-buildpacks", str(BUILDPACKS), "-order", str(ORDER), "-run-image", "busybox", "my-app"]
    (base / "layers").mkdir()
    res = run_program("creator", *args, env=base_env(), timeout=300)
    assert res.returncode == 0, res.stdout
    layer = blob_file(root / BUSYBOX_PATH, BUSYBOX_LAYER)
    layer.unlink()
    os.mkfifo(layer)
    shutil.rmtree(base / "layers")
    (base / "layers").mkdir()
    (base / "app" / "hello.txt").write_text("a new app layer\n")
    before = _state(root)
    res = run_program("creator", *args, env=base_env(), timeout=300)
    _one_error(res.stdout, res.returncode, 62, "is a FIFO")
    assert _state(root) == before
