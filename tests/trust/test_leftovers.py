"""Leftovers of interrupted exports: a later write to the same layout removes our own stale
temporary files (``.tmp-*`` blobs, pin directories, ``.index.json.tmp-*``) once they are older than
the grace period, and nothing else: not fresh ones (a live writer's), not symlinks, not their
targets, not other names (spec/trust-model.md)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lifecycle.image.layout import STALE_AFTER
from tests.e2e.conftest import Workspace


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_a_later_export_sweeps_stale_temporary_files_only(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.fresh()
    ws.creator()
    image = ws.image_dir()
    blobs = image / "blobs" / "sha256"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"not ours")
    old, fresh = STALE_AFTER + 60, 5
    made = {
        blobs / ".tmp-interrupted": old,  # a BlobWriter killed mid-write
        blobs / ".tmp-link-123-abcd": old,  # a hard link in flight
        image / ".index.json.tmp-x1y2": old,  # an index.json replace killed before its rename
        blobs / ".tmp-live": fresh,  # a live writer's
        blobs / "notes.txt": old,  # not our name
        image / ".tmp-other": old,  # our pattern, but not where we write it
    }
    for path in made:
        path.write_bytes(b"partial")
    pins = blobs / ".tmp-pins-dead"
    pins.mkdir()
    os.link(outside / "keep", pins / "aa")  # a dead cache commit's pin of a blob
    (pins / "link").symlink_to(outside / "keep")
    _age(pins, old)
    symlink = blobs / ".tmp-symlink"
    symlink.symlink_to(outside / "keep")
    _age(symlink, old)
    for path, age in made.items():
        _age(path, age)

    ws.fresh()
    (ws.app / "hello.txt").write_text("changed\n")  # a new image: index.json is written again
    ws.creator()

    gone = [blobs / ".tmp-interrupted", blobs / ".tmp-link-123-abcd", image / ".index.json.tmp-x1y2", pins]
    assert [p for p in gone if os.path.lexists(p)] == []
    kept = [blobs / ".tmp-live", blobs / "notes.txt", image / ".tmp-other", symlink]
    assert [p for p in kept if not os.path.lexists(p)] == []
    assert (outside / "keep").read_bytes() == b"not ours" and os.listdir(outside) == ["keep"]
