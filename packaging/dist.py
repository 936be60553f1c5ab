"""Lifecycle distribution: the tarball pack's ``builder create`` takes, and the lifecycle image's labels.

usage:
  dist.py tarball FROZEN_DIR LAUNCHER OUT_DIR   write OUT_DIR/lifecycle-<version>+linux.x86-64.tgz, print its path
  dist.py labels                                print the image labels, one ``key=value`` a line
  dist.py version                               print the declared lifecycle version

The tarball holds ``lifecycle.toml`` and ``lifecycle/<name>``: the frozen multi-call ``lifecycle``
(packaging/freeze.sh), the phases as symlinks to it, and the launcher. pack copies only the files
directly under ``lifecycle/`` into a builder's ``/cnb/lifecycle``. Entries are sorted, owned by 0:0,
dated SOURCE_DATE_EPOCH (default 0) and gzipped without a name or time: same inputs, same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
from pathlib import Path

from lifecycle.descriptor import DECLARED_VERSION, labels, lifecycle_toml

PHASES = ("analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender")
PLATFORM = "linux.x86-64"


def tarball_name(version: str = DECLARED_VERSION) -> str:
    """``lifecycle-<version>+linux.x86-64.tgz``, upstream's naming."""
    return f"lifecycle-{version}+{PLATFORM}.tgz"


def _info(name: str, mtime: int, kind: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_tarball(frozen: Path, launcher: Path, out_dir: Path) -> Path:
    """Write the tarball from the frozen ``lifecycle`` in ``frozen`` and ``launcher``; atomic."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / tarball_name()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    files = {"lifecycle/launcher": launcher, "lifecycle/lifecycle": frozen / "lifecycle"}
    links = {f"lifecycle/{phase}": "lifecycle" for phase in PHASES}
    toml = lifecycle_toml().encode()
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info("lifecycle.toml", mtime, size=len(toml), mode=0o644), io.BytesIO(toml))
            tar.addfile(_info("lifecycle", mtime, tarfile.DIRTYPE))
            for name in sorted({*files, *links}):
                if name in links:
                    info = _info(name, mtime, tarfile.SYMTYPE, mode=0o777)
                    info.linkname = links[name]
                    tar.addfile(info)
                    continue
                with open(files[name], "rb") as src:
                    tar.addfile(_info(name, mtime, size=os.fstat(src.fileno()).st_size), src)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def main(argv: list[str]) -> int:
    """The command line above."""
    if argv[:1] == ["tarball"] and len(argv) == 4:
        print(write_tarball(Path(argv[1]), Path(argv[2]), Path(argv[3])))
        return 0
    if argv == ["labels"]:
        print("\n".join(f"{k}={v}" for k, v in labels().items()))
        return 0
    if argv == ["version"]:
        print(DECLARED_VERSION)
        return 0
    print("ERROR: usage: dist.py tarball FROZEN_DIR LAUNCHER OUT_DIR | labels | version")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
