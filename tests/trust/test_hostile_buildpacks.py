"""Hostile buildpacks against the real ``creator`` run as root with ``-uid 1000 -gid 1000``.

Each buildpack tries one way to make the lifecycle read, redirect or leak what the CNB user cannot
read (a root-only file in a 0700 dir). Whatever the outcome, no byte of that file may reach the
image, the layout, the cache, the layers or a directory outside the build's trees, and the build
either succeeds or fails cleanly: one ``ERROR:`` line, a documented code, no traceback
(spec/trust-model.md).
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from pathlib import Path

import pytest

from tests.phases.buildpacks import write_buildpack, write_order
from tests.trust.conftest import SECRET, UserWorkspace

LAYER = "printf '[types]\\nlaunch = true\\ncache = true\\nbuild = true\\n' > \"$1/%s.toml\"\n"

# name -> bin/build body; {secret}, {secret_dir}, {outside} are filled in. $1 is <layers>/<bp>.
TRICKS = {
    "layer dir is a symlink to a root-only dir":
        'ln -s {secret_dir} "$1/evil"\n' + LAYER % "evil",
    "file in a layer is a symlink to a root-only file":
        'mkdir "$1/lay"; ln -s {secret} "$1/lay/key"\n' + LAYER % "lay",
    "launch, layer and cache SBOM files are symlinks to a root-only file":
        'mkdir "$1/lay"; echo x > "$1/lay/f"\n' + LAYER % "lay"
        + 'for f in launch.sbom.cdx.json build.sbom.cdx.json lay.sbom.cdx.json; do ln -s {secret} "$1/$f"; done\n',
    "<layers>/config is a symlink to a root-owned dir outside":
        'L=$(dirname "$1"); rm -rf "$L/config"; ln -s {outside} "$L/config"\n'
        'mkdir "$1/lay"; echo x > "$1/lay/f"\n' + LAYER % "lay",
    "<layers>/config is a symlink to the root-only dir":
        'L=$(dirname "$1"); rm -rf "$L/config"; ln -s {secret_dir} "$L/config"\n',
    "<layers>/sbom is a symlink to a root-owned dir outside":
        'L=$(dirname "$1"); rm -rf "$L/sbom"; ln -s {outside} "$L/sbom"\n'
        'echo \'{{"bomFormat":"CycloneDX"}}\' > "$1/launch.sbom.cdx.json"\n',
    "env, env.launch, env.build dirs and env files point at root-only files":
        'mkdir -p "$1/lay/env.build"; ln -s {secret_dir} "$1/lay/env"; ln -s {secret_dir} "$1/lay/env.launch"\n'
        'ln -s {secret} "$1/lay/env.build/LEAK"\n' + LAYER % "lay",
    "exec.d dir is a symlink to the root-only dir":
        'mkdir "$1/lay"; ln -s {secret_dir} "$1/lay/exec.d"\n' + LAYER % "lay",
    "app dir gains symlinks to root-only files and dirs":
        'ln -s {secret} leak; ln -s {secret_dir} leakdir; ln -s / rootfs\n',
    "hard links to a root-only file in the app and a layer":
        'mkdir "$1/lay"; ln {secret} "$1/lay/hard" 2>/dev/null || true; ln {secret} hard2 2>/dev/null || true\n'
        + LAYER % "lay",
}


def _contains_secret(path: Path) -> bool:
    """Whether the file's bytes, or its gzip/zlib-decompressed bytes, hold the secret."""
    data = path.read_bytes()
    if SECRET in data:
        return True
    if data[:2] == b"\x1f\x8b":
        try:
            return SECRET in gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return False
    return False


def _leaks(roots: list[Path], secret_inode: tuple[int, int]) -> list[str]:
    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) == secret_inode:
                    continue  # the secret itself (a hard link to it) is not a copy
                if _contains_secret(path):
                    found.append(str(path))
    return found


@pytest.mark.parametrize("trick", list(TRICKS))
def test_no_root_only_byte_leaves_its_file(user_ws: UserWorkspace, trick: str) -> None:
    ws = user_ws
    buildpacks = ws.base / "buildpacks"
    body = TRICKS[trick].format(secret=ws.secret_file, secret_dir=ws.secret_dir, outside=ws.outside)
    write_buildpack(buildpacks, "evil/bp", "1.0", build=body,  # SBOMs declared, so the SBOM copy runs
                    extra_toml='sbom-formats = ["application/vnd.cyclonedx+json"]')
    order = write_order(ws.base / "order.toml", [("evil/bp", "1.0")])
    # the hard-link case as a host without protected_hardlinks would let the buildpack make it
    if "hard links" in trick:
        os.link(ws.secret_file, ws.app / "hard")
    secret_st = ws.secret_file.stat()

    code, out = ws.creator(buildpacks=buildpacks, order=order)

    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    if code == 0:
        assert not errors, out
    else:
        assert len(errors) == 1 and code not in (1, 2), (code, out)
    assert "Traceback" not in out
    assert SECRET.decode() not in out
    leaks = _leaks([ws.oci, ws.cache, ws.layers, ws.app, ws.outside, ws.base / "buildpacks"],
                   (secret_st.st_dev, secret_st.st_ino))
    assert not leaks, (leaks, out)
    assert list(ws.outside.iterdir()) == [], out
    after = ws.secret_file.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (0, 0, 0o600)
    assert [p.name for p in ws.secret_dir.iterdir()] == ["key"]
