"""The volume cache (``-cache-dir``), in upstream's on-disk format.

::

    <dir>/committed/io.buildpacks.lifecycle.cache.metadata   JSON metadata
    <dir>/committed/sha256:<hex>.tar                         uncompressed layer tars, by diffID
    <dir>/staging/                                           the next cache, built by the exporter
    <dir>/committed-backup/                                  only during commit

Open: if ``committed`` is missing but ``committed-backup`` exists (a commit was killed between its
two renames), the backup is renamed back; otherwise the backup is removed. ``staging`` is wiped and
recreated. Commit: ``committed`` -> ``committed-backup``, ``staging`` -> ``committed``, delete the
backup; a failed second rename is rolled back. A SIGKILL at any point leaves either the previous
or the new cache committed for the next open.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from lifecycle.cache import CacheError, CacheReadError, check_diff_id
from lifecycle.cache.metadata import METADATA_LABEL, CacheMetadata, parse
from lifecycle.fs.tree import read_file
from lifecycle.image.layout import file_digest

MAX_METADATA = 16 * 1024 * 1024

CHUNK = 1 << 20

# Test hook: called between the two renames of a commit (tests pause or kill the process there).
between_renames: Callable[[], None] | None = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VolumeCache:
    """A cache directory (see the module doc)."""

    def __init__(self, directory: Path, logger: Any) -> None:
        self.dir = Path(directory)
        self.logger = logger
        self.committed_dir = self.dir / "committed"
        self.staging_dir = self.dir / "staging"
        self.backup_dir = self.dir / "committed-backup"
        self._committed = False
        if not self.dir.is_dir():
            raise CacheError(f"failed to create volume cache: directory '{self.dir}' does not exist")
        try:
            self._recover()
            if self.staging_dir.exists():
                shutil.rmtree(self.staging_dir)
            self.staging_dir.mkdir()
            self.committed_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise CacheError(f"failed to create volume cache: {exc}") from None

    def _recover(self) -> None:
        if self.backup_dir.exists():
            if not self.committed_dir.exists():
                # Killed between "committed -> backup" and "staging -> committed".
                self.logger.warning(f"Recovering the previous cache in '{self.dir}' from an interrupted commit")
                os.rename(self.backup_dir, self.committed_dir)
                _fsync_dir(self.dir)
            else:
                shutil.rmtree(self.backup_dir)

    # ---- reading -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The cache directory."""
        return str(self.dir)

    def exists(self) -> bool:
        """Whether the committed directory exists (upstream: always, once opened)."""
        return self.committed_dir.is_dir()

    def metadata(self) -> CacheMetadata:
        """Committed metadata; missing -> empty, unreadable or not JSON -> empty with a warning."""
        path = self.committed_dir / METADATA_LABEL
        try:
            raw = read_file(path, MAX_METADATA)  # a FIFO or huge file here is refused, not waited on
        except FileNotFoundError:
            return CacheMetadata()
        except OSError as exc:
            self.logger.warning(f"Ignoring cache metadata '{path}': {exc.strerror}; using an empty cache")
            return CacheMetadata()
        try:
            return parse(raw)
        except ValueError as exc:
            self.logger.warning(f"Ignoring cache metadata '{path}': {exc}; using an empty cache")
            return CacheMetadata()

    def layer_path(self, diff_id: str) -> Path:
        """Where the committed layer ``diff_id`` is; CacheReadError when it is not there."""
        path = self.committed_dir / f"{check_diff_id(diff_id)}.tar"
        if not path.is_file():
            raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}'")
        return path

    @contextlib.contextmanager
    def retrieve_layer(self, diff_id: str) -> Iterator[IO[bytes]]:
        """The committed tar, opened for reading."""
        path = self.layer_path(diff_id)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise CacheReadError(f"failed to find cache layer with SHA '{diff_id}'") from None
        except PermissionError:
            raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}' due to insufficient "
                                 "permissions") from None
        with f:
            yield f

    def verify_layer(self, diff_id: str) -> None:
        """Re-hash the committed tar."""
        path = self.layer_path(diff_id)
        try:
            found = file_digest(path)
        except OSError as exc:
            raise CacheReadError(f"failed to read cache layer with SHA '{diff_id}': {exc.strerror}") from None
        if found != diff_id:
            raise CacheReadError(f"expected layer contents to have SHA '{diff_id}'; found '{found}'")

    # ---- writing -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._committed:
            raise CacheError("cache cannot be modified after commit")

    def scratch_dir(self) -> Path:
        """The staging directory (so a finished temp tar is linked in, not copied)."""
        return self.staging_dir

    def add_layer(self, source: Path | IO[bytes], diff_id: str) -> None:
        """Stage a tar: a file is hard-linked (copied and verified across filesystems); a stream is
        copied in chunks and verified against ``diff_id``."""
        self._check_open()
        target = self.staging_dir / f"{check_diff_id(diff_id)}.tar"
        if target.is_file():
            return
        if isinstance(source, Path):
            try:
                os.link(source, target)
                return
            except FileExistsError:
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise CacheError(f"caching layer ({diff_id}): {exc}") from None
            with open(source, "rb") as f:
                self._write_stream(f, target, diff_id)
            return
        self._write_stream(source, target, diff_id)

    def _write_stream(self, source: IO[bytes], target: Path, diff_id: str) -> None:
        fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=self.staging_dir)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            found = "sha256:" + digest.hexdigest()
            if found != diff_id:
                raise CacheError(f"caching layer ({diff_id}): its contents have SHA '{found}'")
            os.replace(name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise

    def reuse_layer(self, diff_id: str) -> None:
        """Verify the committed tar, then hard-link it into staging."""
        self._check_open()
        self.verify_layer(diff_id)
        committed = self.layer_path(diff_id)
        target = self.staging_dir / f"{diff_id}.tar"
        try:
            os.link(committed, target)
        except FileExistsError:
            pass
        except OSError as exc:
            raise CacheError(f"reusing layer ({diff_id}): {exc}") from None

    def set_metadata(self, metadata: CacheMetadata) -> None:
        """Write the metadata file into staging (fsynced)."""
        self._check_open()
        path = self.staging_dir / METADATA_LABEL
        fd, name = tempfile.mkstemp(prefix=".tmp-meta-", dir=self.staging_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(metadata.to_json() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise

    def commit(self) -> None:
        """committed -> committed-backup, staging -> committed, delete the backup; roll back when
        the second rename fails."""
        self._check_open()
        self._committed = True
        for leftover in self.staging_dir.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        _fsync_dir(self.staging_dir)
        try:
            os.rename(self.committed_dir, self.backup_dir)
        except OSError as exc:
            raise CacheError(f"backing up cache: {exc}") from None
        try:
            if between_renames is not None:
                between_renames()
            os.rename(self.staging_dir, self.committed_dir)
        except BaseException as exc:
            try:
                os.rename(self.backup_dir, self.committed_dir)
            except OSError as exc2:
                raise CacheError(f"rolling back cache: {exc2}") from None
            if isinstance(exc, OSError):
                raise CacheError(f"committing cache: {exc}") from None
            raise
        _fsync_dir(self.dir)
        shutil.rmtree(self.backup_dir, ignore_errors=True)
