"""OCI image layouts on disk: read any layout real tools write, and write atomically.

Read side (D3, D4): ``index.json`` as OCI index, Docker manifest list or no media type; nested
indexes followed by platform; OCI or Docker v2s2 manifests; every blob read is checked against
its digest and size; missing layer blobs (sparse layouts) are fine until their bytes are needed.

Write side (D5): blobs go to a temp file, are fsynced and renamed into place (an existing blob is
never rewritten); ``index.json`` is replaced atomically while holding an exclusive ``flock`` on
the layout directory, so concurrent writers of different tags both survive. The lock is re-entrant
within a process (a cache commit tags and prunes inside one critical section). After a tag is
written, temporary files of interrupted writers (our own ``.tmp-`` names only, regular files and
pin directories, untouched for :data:`STALE_AFTER` seconds) are removed without following links.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform as _platform
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lifecycle.errors import ImageError
from lifecycle.fs.tree import Tree, TreeError
from lifecycle.fs.tree import read_bounded as _read_bounded
from lifecycle.image import model as m
from lifecycle.image.ref import valid_digest

MAX_JSON_BLOB = 16 * 1024 * 1024
MAX_INDEX = 16 * 1024 * 1024  # index.json; oci-layout is tiny
MAX_MARKER = 4096
CHUNK = 1 << 20
LAYOUT_VERSION = "1.0.0"
# A temporary file or pin directory untouched this long belongs to an interrupted writer: a live
# writer keeps writing its temp blob, and a cache commit adds to its pin directory as it stages.
STALE_AFTER = 3600
TMP_PREFIX = ".tmp-"  # every temporary name this module makes in blobs/<alg> starts so
PIN_PREFIX = ".tmp-pins-"  # a cache commit's directory of hard links to the blobs it staged

# Re-entrant per-process holding of the layout lock (flock is per open file description: a second
# flock from this process on another descriptor would wait for itself).
_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, threading.RLock] = {}
_DEPTH: dict[str, int] = {}

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> m.Platform:
    """linux and this machine's architecture, in OCI terms."""
    machine = _platform.machine().lower()
    return m.Platform(os="linux", architecture=_ARCH.get(machine, machine))


@dataclass
class Image:
    """A selected image: its manifest and config, and where its blobs live."""

    path: Path
    manifest_digest: str
    manifest_size: int
    manifest: m.Manifest
    config: m.ImageConfig
    config_bytes: bytes
    layout: Layout
    descriptor: m.Descriptor
    missing: set[str] = field(default_factory=set)

    @property
    def identifier(self) -> str:
        """``<path>@<manifest digest>``, as upstream names layout images."""
        return f"{self.path}@{self.manifest_digest}"

    @property
    def diff_ids(self) -> list[str]:
        """The layers' diffIDs from the config."""
        return list(self.config.rootfs.diff_ids)

    def has_layer_blob(self, digest: str) -> bool:
        """Whether the compressed blob is on disk (sparse layouts lack some)."""
        return self.layout.has_blob(digest)


class Layout:
    """One OCI image layout directory."""

    # Over 200 lines on purpose: reading (index selection, verified blobs) and writing (atomic
    # blobs, index.json under the directory lock) share the blob paths and the lock; split, each
    # half would need the other's internals.

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # What this instance created (directories, oci-layout, blobs that were not there), so a
        # failed export can take exactly that back (discard_created).
        self.created: list[Path] = []

    # ---- reading ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """A layout exists when its directory holds ``index.json`` (``oci-layout`` is optional)."""
        return os.path.lexists(self.path / "index.json")  # an odd one is refused when read

    def blob_path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives; refuses malformed digests (they name file paths)."""
        if not valid_digest(digest):
            raise ImageError(f"invalid digest '{digest}' in layout {self.path}")
        alg, hexpart = digest.split(":", 1)
        return self.path / "blobs" / alg / hexpart

    def has_blob(self, digest: str) -> bool:
        """Whether something is at the blob's name (a symlink or other non-file there is an error
        when the blob is opened, not a sparse layout's missing blob)."""
        return os.path.lexists(self.blob_path(digest))

    def _open_file(self, rel: str, what: str) -> IO[bytes]:
        """Open ``rel`` under the layout dir as a regular file: no symlink (at the file or a parent
        below the layout dir), FIFO, device or directory, so a hostile layout cannot point a read
        at the host's files or hang it (spec/trust-model.md). Missing: FileNotFoundError."""
        try:
            with Tree.open(self.path) as tree:
                return tree.open_regular(rel)
        except TreeError as exc:
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, str(exc)) from None
            raise ImageError(f"{what} in layout {self.path}: {exc}") from None

    def _read_small(self, rel: str, cap: int, what: str, *, descriptor_size: int | None = None) -> bytes:
        with self._open_file(rel, what) as f:
            try:
                return _read_bounded(f, cap, f"{self.path}/{rel}")
            except TreeError as exc:
                says = f", descriptor says {descriptor_size}" if descriptor_size is not None else ""
                raise ImageError(f"{what} in layout {self.path}: {exc}{says}") from None

    def check_version(self) -> None:
        """``oci-layout`` may be absent; if present it must say version 1.0.0."""
        marker = self.path / "oci-layout"
        if not os.path.lexists(marker):
            return
        try:
            version = json.loads(self._read_small("oci-layout", MAX_MARKER, "oci-layout")).get("imageLayoutVersion")
        except (ValueError, AttributeError, OSError, RecursionError):
            raise ImageError(f"invalid oci-layout file in {self.path}") from None
        if version != LAYOUT_VERSION:
            raise ImageError(f"unsupported imageLayoutVersion '{version}' in {self.path}/oci-layout "
                             f"(want {LAYOUT_VERSION})")

    def read_index(self) -> m.Index:
        """Parse ``index.json``."""
        self.check_version()
        try:
            data = self._read_small("index.json", MAX_INDEX, "index.json")
        except OSError as exc:
            raise ImageError(f"cannot read {self.path}/index.json: {exc.strerror}") from None
        index: m.Index = self._parse(m.Index, data, f"{self.path}/index.json")
        return index

    def read_blob(self, desc: m.Descriptor) -> bytes:
        """Read a small (JSON) blob and verify its digest and size."""
        if desc.size > MAX_JSON_BLOB:
            raise ImageError(f"blob {desc.digest} is too large to be a manifest or config "
                             f"({desc.size} bytes)")
        path = self.blob_path(desc.digest)
        try:
            data = self._read_small(str(path.relative_to(self.path)), max(desc.size, 0), f"blob {desc.digest}",
                                    descriptor_size=desc.size)
        except FileNotFoundError:
            raise ImageError(f"blob {desc.digest} is missing from layout {self.path}") from None
        except OSError as exc:
            raise ImageError(f"cannot read blob {desc.digest}: {exc.strerror}") from None
        _verify(data, desc)
        return data

    def open_blob_file(self, digest: str) -> IO[bytes]:
        """The blob's file, opened as a regular file without following a symlink (not verified;
        FileNotFoundError when absent)."""
        return self._open_file(str(self.blob_path(digest).relative_to(self.path)), f"blob {digest}")

    @contextlib.contextmanager
    def open_blob(self, desc: m.Descriptor) -> Iterator[IO[bytes]]:
        """Open a (layer) blob for streaming; the reader raises at EOF if digest or size are wrong."""
        rel = str(self.blob_path(desc.digest).relative_to(self.path))
        try:
            raw = self._open_file(rel, f"blob {desc.digest}")
        except FileNotFoundError:
            raise ImageError(f"blob {desc.digest} is missing from layout {self.path}") from None
        with raw:
            yield VerifyingReader(raw, desc)  # type: ignore[misc]

    def image(self, tag: str | None = None, digest: str | None = None,
              platform: m.Platform | None = None) -> Image:
        """Select the image for ``tag``/``digest`` and ``platform`` (D3) and load it."""
        index = self.read_index()
        want = platform or host_platform()
        desc = self._select(index.manifests, tag, digest, want, depth=0, where=f"{self.path}/index.json")
        return self._load(desc)

    def _select(self, descs: list[m.Descriptor], tag: str | None, digest: str | None, want: m.Platform,
                depth: int, where: str) -> m.Descriptor:
        if depth > 4:
            raise ImageError(f"image indexes nested too deeply in {self.path}")
        if not descs:
            raise ImageError(f"no manifests in {where}")
        chosen = descs
        hit = False
        if digest:
            by_digest = [d for d in descs if d.digest == digest]
            hit = bool(by_digest)
            chosen = by_digest[:1] or descs  # one digest, one manifest (several tags may share it)
        if tag and depth == 0 and not hit:
            named = [d for d in descs if d.ref_name is not None and _ref_matches(d.ref_name, tag)]
            if named:
                chosen = named
            else:
                others = sorted({d.ref_name for d in descs if d.ref_name})
                if len(descs) == 1 and others:
                    raise ImageError(f"reference name mismatch in {where}: want '{tag}', "
                                     f"found '{others[0]}'")
                unnamed = [d for d in descs if d.ref_name is None]
                if not unnamed:
                    raise ImageError(f"no manifest named '{tag}' in {where} (found: {', '.join(others)})")
                chosen = unnamed
        if not hit and (len(chosen) > 1 or depth > 0):
            # Inside an index (a multi-platform image) the platform must match, even for one entry.
            chosen = _by_platform(chosen, want)
        if len(chosen) > 1:
            listing = ", ".join(f"{d.digest} ({_plat(d)})" for d in chosen)
            raise ImageError(f"more than one manifest matches in {where}: {listing}")
        if not chosen:
            raise ImageError(f"no manifest for platform {_plat_str(want)} in {where}")
        desc = chosen[0]
        media = desc.mediaType
        if digest == desc.digest:
            digest = None  # found: below an index, choose by platform
        if media in m.INDEX_TYPES:
            nested = self._parse(m.Index, self.read_blob(desc), f"index {desc.digest}")
            return self._select(nested.manifests, None, digest, want, depth + 1, f"index {desc.digest}")
        if media and media not in m.MANIFEST_TYPES:
            raise ImageError(f"unexpected media type for {desc.digest}: {media}")
        if digest:
            raise ImageError(f"digest mismatch in {where}: want '{digest}', found '{desc.digest}'")
        return desc

    def _load(self, desc: m.Descriptor) -> Image:
        data = self.read_blob(desc)
        raw = _json(data, f"manifest {desc.digest}")
        if isinstance(raw, dict) and raw.get("mediaType") in m.INDEX_TYPES | {None} and "manifests" in raw:
            nested = self._parse(m.Index, data, f"index {desc.digest}")
            return self._load(self._select(nested.manifests, None, None, host_platform(), 1,
                                           f"index {desc.digest}"))
        manifest = self._parse(m.Manifest, data, f"manifest {desc.digest}")
        config_bytes = self.read_blob(manifest.config)
        config = self._parse(m.ImageConfig, config_bytes, f"config {manifest.config.digest}")
        if len(config.rootfs.diff_ids) != len(manifest.layers):
            raise ImageError(f"manifest {desc.digest} lists {len(manifest.layers)} layers but its config "
                             f"has {len(config.rootfs.diff_ids)} diff_ids")
        missing = {layer.digest for layer in manifest.layers if not self.has_blob(layer.digest)}
        return Image(path=self.path, manifest_digest=desc.digest, manifest_size=len(data),
                     manifest=manifest, config=config, config_bytes=config_bytes, layout=self,
                     descriptor=desc, missing=missing)

    @staticmethod
    def _parse(model: type[Any], data: bytes, what: str) -> Any:
        return m.parse_blob(model, data, what)

    # ---- writing ---------------------------------------------------------------------------
    def init(self) -> None:
        """Create the directory, ``oci-layout`` and ``blobs/sha256`` (idempotent)."""
        blobs = self.path / "blobs" / "sha256"
        if not blobs.is_dir():
            missing = [p for p in (blobs, *blobs.parents) if not os.path.lexists(p)]
            blobs.mkdir(parents=True, exist_ok=True)
            self.created.extend(missing)
        marker = self.path / "oci-layout"
        if not marker.exists():
            _atomic_write(marker, json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
            self.created.append(marker)

    def referenced(self) -> set[str] | None:
        """Every digest ``index.json`` reaches (manifests, indexes, configs, layers); None when that
        cannot be known (an unreadable index or manifest: then nothing may be removed)."""
        if not os.path.lexists(self.path / "index.json"):
            return set()
        out: set[str] = set()
        try:
            todo = list(self.read_index().manifests)
            while todo:
                desc = todo.pop()
                if desc.digest in out:
                    continue
                out.add(desc.digest)
                if desc.mediaType in m.INDEX_TYPES:
                    todo.extend(m.parse_blob(m.Index, self.read_blob(desc), f"index {desc.digest}").manifests)
                elif not desc.mediaType or desc.mediaType in m.MANIFEST_TYPES:
                    data = self.read_blob(desc)
                    raw = m.loads(data)
                    if isinstance(raw, dict) and "manifests" in raw:
                        todo.extend(m.parse_blob(m.Index, data, f"index {desc.digest}").manifests)
                        continue
                    manifest = m.parse_blob(m.Manifest, data, f"manifest {desc.digest}")
                    out.add(manifest.config.digest)
                    out.update(layer.digest for layer in manifest.layers)
        except (ImageError, OSError, ValueError):
            return None
        return out

    def discard_created(self) -> None:
        """Take back what this instance created, for a failed export: under the lock, its blobs that
        ``index.json`` does not reference (a concurrent writer's tag may), then ``oci-layout`` and
        the directories it made, when nothing else is in them. Best effort."""
        if not self.created or not self.path.is_dir():
            return
        with contextlib.suppress(OSError), self.locked():
            keep = self.referenced()
            if keep is None:
                return
            for path in list(self.created):
                if path.parent.name in ("sha256", "sha512") and path.parent.parent.name == "blobs" \
                        and f"{path.parent.name}:{path.name}" not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    self.created.remove(path)
            marker = self.path / "oci-layout"
            if marker in self.created and not os.path.lexists(self.path / "index.json"):
                with contextlib.suppress(FileNotFoundError):
                    marker.unlink()
        self.sweep_stale(older_than=STALE_AFTER)
        for path in sorted((p for p in self.created if p.is_dir() and not p.is_symlink()),
                           key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty

    def blob_writer(self) -> BlobWriter:
        """A streaming writer: bytes -> temp file -> fsync -> rename to its digest."""
        self.init()
        return BlobWriter(self)

    def put_blob(self, data: bytes, media_type: str) -> m.Descriptor:
        """Store a small blob (manifest, config); returns its descriptor."""
        with self.blob_writer() as writer:
            writer.write(data)
            return writer.commit(media_type)

    def add_blob_from(self, source: Path, desc: m.Descriptor) -> bool:
        """Bring blob ``desc`` from another layout's file: hard link when possible, else a copy.
        Returns False (and writes nothing) when the source is absent (sparse).

        The source is input (spec/trust-model.md): it is opened without following symlinks and must
        be a regular file whose bytes have ``desc``'s digest and size before anything lands here;
        the hard link is checked to be that same file, and a failed copy leaves nothing behind.
        """
        target = self.blob_path(desc.digest)
        try:
            src = _open_input_blob(source, desc)
        except FileNotFoundError:
            return False
        with src:
            st = os.fstat(src.fileno())
            if os.path.lexists(target):
                tst = os.lstat(target)
                if (tst.st_dev, tst.st_ino) == (st.st_dev, st.st_ino):
                    return True  # an earlier hard link of this very file
            got = _digest_of(src, desc.digest.split(":", 1)[0])
            if got != desc.digest or st.st_size != desc.size:
                raise ImageError(f"blob {desc.digest} in {source.parent} is corrupt: its content has digest "
                                 f"{got}, {st.st_size} bytes (want {desc.size})")
            if os.path.lexists(target) and _verified(target, desc):
                return True  # a good copy is already here; a corrupt or odd one is replaced below
            self.init()
            tmp = target.parent / f"{TMP_PREFIX}link-{os.getpid()}-{os.urandom(4).hex()}"
            try:
                os.link(source, tmp, follow_symlinks=False)
                lst = os.lstat(tmp)
                if (lst.st_dev, lst.st_ino) == (st.st_dev, st.st_ino):  # not swapped since we checked it
                    new = not os.path.lexists(target)
                    os.replace(tmp, target)
                    if new:
                        self.created.append(target)
                    return True
                tmp.unlink()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOENT):
                    raise ImageError(f"cannot link blob {desc.digest}: {exc.strerror}") from None
            src.seek(0)
            with self.blob_writer() as writer:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    writer.write(chunk)
                if writer.digest != desc.digest:  # changed under us: publish nothing
                    raise ImageError(f"blob {desc.digest} in {source.parent} changed while being copied")
                writer.commit(desc.mediaType)
        return True

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the layout directory: it serialises ``index.json`` updates
        and a cache commit's check, tag and prune. Re-entrant within this process."""
        self.init()
        key = os.path.realpath(self.path)
        with _LOCKS_GUARD:
            rlock = _LOCKS.setdefault(key, threading.RLock())
        with rlock:
            if _DEPTH.get(key):
                _DEPTH[key] += 1
                try:
                    yield
                finally:
                    _DEPTH[key] -= 1
                return
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _DEPTH[key] = 1
                yield
            finally:
                _DEPTH.pop(key, None)
                os.close(fd)

    def sweep_stale(self, older_than: float = STALE_AFTER) -> list[str]:
        """Remove what interrupted writers left: in the layout dir, ``.index.json.tmp-*`` and
        ``.oci-layout.tmp-*`` files; in ``blobs/<alg>``, ``.tmp-*`` files and ``.tmp-pins-*``
        directories; only regular files and real directories whose mtime is older than
        ``older_than`` seconds. Symlinks and every other name are left alone, nothing is followed.
        Returns the removed paths (relative to the layout). Best effort: errors are ignored."""
        removed: list[str] = []
        limit = time.time() - older_than
        try:
            with Tree.open(self.path) as tree:
                removed += _sweep_dir(tree.fd, "", (".index.json.tmp-", ".oci-layout.tmp-"), limit, dirs=False)
                blobs = tree.lstat("blobs")
                if blobs is None or not stat.S_ISDIR(blobs.st_mode):
                    return removed
                with tree.subtree("blobs") as sub:
                    for name in sorted(os.listdir(sub.fd)):
                        st = os.stat(name, dir_fd=sub.fd, follow_symlinks=False)
                        if not stat.S_ISDIR(st.st_mode):
                            continue
                        with sub.subtree(name) as alg:
                            removed += _sweep_dir(alg.fd, f"blobs/{name}/", (TMP_PREFIX,), limit, dirs=True)
        except OSError:
            pass
        return removed

    def set_tag(self, desc: m.Descriptor, tag: str) -> None:
        """Point ``tag`` at ``desc`` in ``index.json``, keeping every other entry (tags, referrers)
        in its place; a tag already there keeps its position, so a rebuild rewrites the same file."""
        with self.locked():
            manifests: list[m.Descriptor] = []
            if (self.path / "index.json").is_file():
                try:
                    manifests = self.read_index().manifests
                except ImageError:
                    manifests = []  # an unreadable index is replaced, not merged
            entry = desc.model_copy(update={"annotations": {**(desc.annotations or {}), m.REF_NAME: tag}})
            at = next((i for i, d in enumerate(manifests) if d.ref_name == tag), len(manifests))
            manifests = [*manifests[:at], entry, *(d for d in manifests[at:] if d.ref_name != tag)]
            index = m.Index(schemaVersion=2, mediaType=m.OCI_INDEX, manifests=manifests)
            _atomic_write(self.path / "index.json", json.dumps(index.dump(), indent=2).encode() + b"\n")
            self.sweep_stale()

    def add_untagged(self, descs: list[m.Descriptor]) -> None:
        """List ``descs`` in ``index.json`` without a ``ref.name`` (referrers, as notation adds its
        signatures), each once, after every entry already there; an unreadable index is an error."""
        with self.locked():
            manifests = self.read_index().manifests if (self.path / "index.json").is_file() else []
            known = {(d.digest, d.ref_name) for d in manifests}
            new = [d for d in descs if (d.digest, None) not in known]
            if not new:
                return
            index = m.Index(schemaVersion=2, mediaType=m.OCI_INDEX, manifests=[*manifests, *new])
            _atomic_write(self.path / "index.json", json.dumps(index.dump(), indent=2).encode() + b"\n")


class BlobWriter:
    """Streams one blob into ``blobs/sha256`` (temp file, fsync, rename on commit)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        directory = layout.path / "blobs" / "sha256"
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> int:
        """Append bytes."""
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        """Digest of what was written so far."""
        return "sha256:" + self._hash.hexdigest()

    def open_written(self) -> int:
        """A read-only descriptor of the file being written (the caller closes it): it stays valid
        after the commit renames or drops the file. Bytes are readable there after :meth:`flush`."""
        return os.open(self._tmp, os.O_RDONLY | os.O_CLOEXEC)

    def flush(self) -> None:
        """Hand what was written so far to the file, so readers of :meth:`open_written` see it."""
        self._file.flush()

    def commit(self, media_type: str, pin: Path | None = None) -> m.Descriptor:
        """fsync and rename into place; an existing blob of that digest is left untouched when its
        bytes verify (a corrupt one is replaced). With ``pin``, a hard link to the bytes written
        is also left there (a cache commit restores the blob from it if a concurrent prune removed
        the blob before this writer tagged it)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self.layout.blob_path(self.digest)
        if pin is not None:
            os.link(self._tmp, pin)
        if target.is_file() and target.stat().st_size == self.size and file_digest(target) == self.digest:
            self._tmp.unlink()
        else:
            new = not os.path.lexists(target)
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, target)
            if new:
                self.layout.created.append(target)
            _fsync_dir(target.parent)
        self._done = True
        return m.Descriptor(mediaType=media_type, digest=self.digest, size=self.size)

    def abort(self) -> None:
        """Drop the temp file."""
        if not self._done:
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class VerifyingReader:
    """A file reader that checks digest and size when the stream ends."""

    def __init__(self, raw: IO[bytes], desc: m.Descriptor) -> None:
        self._raw = raw
        self._desc = desc
        self._hash = hashlib.new(desc.digest.split(":", 1)[0])
        self._size = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes; at EOF verify."""
        data = self._raw.read(n)
        self._hash.update(data)
        self._size += len(data)
        if not data or (n < 0):
            self._check()
        return data

    def _check(self) -> None:
        got = f"{self._desc.digest.split(':', 1)[0]}:{self._hash.hexdigest()}"
        if self._size != self._desc.size or got != self._desc.digest:
            raise ImageError(f"blob {self._desc.digest} is corrupt: got {got}, {self._size} bytes "
                             f"(want {self._desc.size})")


def _sweep_dir(fd: int, prefix: str, patterns: tuple[str, ...], limit: float, *, dirs: bool) -> list[str]:
    """Remove stale entries named ``patterns`` in the directory ``fd`` (see ``sweep_stale``)."""
    removed = []
    for name in sorted(os.listdir(fd)):
        if not name.startswith(patterns):
            continue
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if st.st_mtime >= limit:
                continue
            if stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=fd)
            elif dirs and stat.S_ISDIR(st.st_mode) and name.startswith(PIN_PREFIX):
                shutil.rmtree(name, dir_fd=fd)  # fd-based: removes links, never follows them
            else:
                continue
        except OSError:
            continue
        removed.append(prefix + name)
    return removed


def _open_input_blob(source: Path, desc: m.Descriptor) -> IO[bytes]:
    """Another layout's blob file, opened as a regular file without following symlinks at it or
    at ``blobs/<alg>`` (FileNotFoundError when absent)."""
    layout_dir = source.parent.parent.parent
    rel = "/".join(source.parts[-3:])
    try:
        with Tree.open(layout_dir) as tree:
            return tree.open_regular(rel)
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, str(exc)) from None
        raise ImageError(f"blob {desc.digest} in layout {layout_dir}: {exc}") from None


def _digest_of(f: IO[bytes], alg: str = "sha256") -> str:
    h = hashlib.new(alg)
    for chunk in iter(lambda: f.read(CHUNK), b""):
        h.update(chunk)
    return f"{alg}:{h.hexdigest()}"


def _verified(target: Path, desc: m.Descriptor) -> bool:
    """Whether ``target`` is a regular file (not a symlink) with ``desc``'s bytes."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        alg = desc.digest.split(":", 1)[0]
        return stat.S_ISREG(st.st_mode) and st.st_size == desc.size and _digest_of(f, alg) == desc.digest


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _verify(data: bytes, desc: m.Descriptor) -> None:
    alg = desc.digest.split(":", 1)[0]
    got = f"{alg}:{hashlib.new(alg, data).hexdigest()}"
    if got != desc.digest:
        raise ImageError(f"blob {desc.digest} is corrupt: its content has digest {got}")
    if len(data) != desc.size:
        raise ImageError(f"blob {desc.digest} has {len(data)} bytes, descriptor says {desc.size}")


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ImageError(f"{what} is not valid JSON") from None


def _ref_matches(ref_name: str, tag: str) -> bool:
    # Tag-only names (umoci, buildkit) and full names (skopeo, crane --annotate-ref) both count.
    return ref_name == tag or ref_name.endswith(f":{tag}") or ref_name.endswith(f"@{tag}")


def _by_platform(descs: list[m.Descriptor], want: m.Platform) -> list[m.Descriptor]:
    with_platform = [d for d in descs if d.platform is not None]
    if not with_platform:
        return descs
    exact = [d for d in with_platform if d.platform and d.platform.os == want.os
             and d.platform.architecture == want.architecture]
    if want.variant:
        variant = [d for d in exact if d.platform and d.platform.variant == want.variant]
        exact = variant or exact
    return exact


def _plat(desc: m.Descriptor) -> str:
    return _plat_str(desc.platform) if desc.platform else "no platform"


def _plat_str(p: m.Platform) -> str:
    return f"{p.os}/{p.architecture}" + (f"/{p.variant}" if p.variant else "")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file, fsync and rename (for TOML outputs too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, data)


def copy_tree_blob(src: Path, dst: Path) -> None:
    """Copy a file preserving nothing but bytes (used when hard links cross filesystems)."""
    shutil.copyfile(src, dst)
