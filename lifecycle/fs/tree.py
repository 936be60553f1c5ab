"""A directory opened once, read relative to its descriptor, never through a symlink.

``Tree.open(root)`` opens ``root`` itself as given (a platform path; the caller trusts its spelling
or passes ``follow_root=False``), then every name below it is opened one component at a time with
``O_NOFOLLOW`` relative to its parent's descriptor, so no symlink, ``..`` or rename race can lead
outside. Regular files are opened with ``O_NONBLOCK`` (a FIFO in a file's place cannot hang the
open) and checked with ``fstat`` before a byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class TreeError(OSError):
    """A name in a tree could not be opened as what the caller needs (symlink, wrong type, missing)."""

    def __str__(self) -> str:
        return str(self.strerror)


class NotRegularError(TreeError):
    """The entry is not a regular file (symlink, directory, FIFO, device, socket)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _parts(rel: str | os.PathLike[str]) -> list[str]:
    parts = [p for p in PurePosixPath(os.fspath(rel)).parts if p not in ("", ".")]
    if not parts or parts[0] == "/" or ".." in parts:
        raise TreeError(errno.EINVAL, f"'{os.fspath(rel)}' is not a relative path inside the tree")
    return parts


@dataclass(frozen=True)
class Entry:
    """One name found by :meth:`Tree.walk`: its path relative to the root and its ``lstat``."""

    rel: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        """A real directory (never a symlink to one)."""
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_regular(self) -> bool:
        """A regular file (never a symlink to one)."""
        return stat.S_ISREG(self.st.st_mode)


class Tree:
    """A directory held by descriptor; close it (or use ``with``) when done."""

    def __init__(self, fd: int, root: str) -> None:
        self.fd = fd
        self.root = root

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, follow_root: bool = True) -> Tree:
        """Open ``root`` as a directory. With ``follow_root=False`` a symlink at ``root`` itself is
        refused too (for roots that untrusted code could have replaced)."""
        flags = _DIR_FLAGS if not follow_root else _DIR_FLAGS & ~os.O_NOFOLLOW
        path = os.fspath(root)
        try:
            return cls(os.open(path, flags), path)
        except OSError as exc:
            raise _explain(exc, path) from None

    def close(self) -> None:
        """Release the descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_dir_fd(self, parts: list[str]) -> int:
        """A new descriptor for the directory ``parts`` below the root, never through a symlink."""
        fd = os.dup(self.fd)
        for i, name in enumerate(parts):
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                raise _explain(exc, os.path.join(self.root, *parts[: i + 1])) from None
            os.close(fd)
            fd = nxt
        return fd

    def subtree(self, rel: str | os.PathLike[str]) -> Tree:
        """The directory ``rel`` below the root as its own Tree (refused when any part is a symlink)."""
        parts = _parts(rel)
        return Tree(self._open_dir_fd(parts), os.path.join(self.root, *parts))

    def lstat(self, rel: str | os.PathLike[str]) -> os.stat_result | None:
        """``lstat`` of ``rel`` (parents opened without following); None when it does not exist."""
        parts = _parts(rel)
        try:
            fd = self._open_dir_fd(parts[:-1])
        except TreeError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        try:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)

    def open_regular(self, rel: str | os.PathLike[str]) -> BinaryIO:
        """Open the regular file ``rel`` for reading; anything else (a symlink included) is refused."""
        parts = _parts(rel)
        dfd = self._open_dir_fd(parts[:-1])
        path = os.path.join(self.root, *parts)
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotRegularError(exc.errno, f"{path} is a symlink, not a regular file") from None
            raise _explain(exc, path) from None
        finally:
            os.close(dfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotRegularError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL,
                                  f"{path} is a {_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def read_bounded(self, rel: str | os.PathLike[str], cap: int) -> bytes:
        """The bytes of the regular file ``rel``, refused when larger than ``cap``."""
        with self.open_regular(rel) as f:
            return read_bounded(f, cap, os.path.join(self.root, os.fspath(rel)))

    def walk(self, rel: str | os.PathLike[str] | None = None) -> Iterator[Entry]:
        """Every entry below ``rel`` (default: the root), parents before children, sorted by name;
        directories are entered by descriptor, symlinks are reported and never entered."""
        base = _parts(rel) if rel is not None else []
        fd = self._open_dir_fd(base)
        try:
            yield from self._walk(fd, "/".join(base))
        finally:
            os.close(fd)

    def _walk(self, fd: int, prefix: str) -> Iterator[Entry]:
        for name in sorted(os.listdir(fd)):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            rel = f"{prefix}/{name}" if prefix else name
            yield Entry(rel, st)
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _explain(exc, os.path.join(self.root, rel)) from None
                try:
                    yield from self._walk(sub, rel)
                finally:
                    os.close(sub)


def read_file(path: str | os.PathLike[str], cap: int) -> bytes:
    """The bytes of the regular file ``path``, for files a platform or a buildpack wrote (TOML).

    A symlink at ``path`` is followed (platforms mount config files as links; the phases run as the
    CNB user, so a buildpack's link leads nowhere that user cannot read). The open never waits
    (``O_NONBLOCK``); a FIFO, device, socket or directory in its place is refused at once, and a
    file larger than ``cap`` (sparse ones included) is refused without being read.
    FileNotFoundError when absent; else :class:`TreeError` whose text says what is wrong (no path).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TreeError(exc.errno, exc.strerror or str(exc)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularError(errno.EINVAL, f"is a {_kind(st.st_mode)}, not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > cap:
            raise TreeError(errno.EFBIG, f"is larger than {cap} bytes")
        os.set_blocking(fd, True)
        data = read_upto(f, cap + 1)
        if len(data) > cap:  # grew since the fstat
            raise TreeError(errno.EFBIG, f"is larger than {cap} bytes")
        return data


def read_bounded(f: IO[bytes], cap: int, what: str) -> bytes:
    """At most ``cap`` bytes of ``f``; a longer (or sparse, or growing) file is refused, not read."""
    data = read_upto(f, cap + 1)
    if len(data) > cap:
        raise TreeError(errno.EFBIG, f"{what} is larger than {cap} bytes")
    return data


_PIECE = 64 * 1024


def read_upto(f: IO[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes of ``f``, read in pieces. One ``read(limit)`` allocates all of
    ``limit`` first (16 MiB for every TOML file and JSON blob read under a 16 MiB cap); glibc's
    allocator, seeing so large a block freed, raises its mmap and trim thresholds to match and
    then keeps up to twice that in its heap for the rest of the process: 5 MiB more peak memory
    per export (measured)."""
    pieces: list[bytes] = []
    got = 0
    while got < limit:
        piece = f.read(min(_PIECE, limit - got))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _explain(exc: OSError, path: str) -> TreeError:
    if exc.errno == errno.ELOOP:
        return NotRegularError(exc.errno, f"{path} is a symlink")
    if exc.errno == errno.ENOTDIR:  # O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR; name it (message only)
        what = "a symlink" if os.path.islink(path) else "not a directory"
        return NotRegularError(exc.errno, f"{path} is {what}")
    return TreeError(exc.errno, f"{path}: {exc.strerror or exc}")
