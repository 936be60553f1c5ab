"""A build as root with ``-uid 1000 -gid 1000``: the phases run as that user (spec/trust-model.md),
so everything they write, the layout export included, belongs to it (checked with ``stat``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import require_tool
from tests.trust.conftest import GID, UID, UserWorkspace


def _owners(root: Path) -> dict[str, tuple[int, int]]:
    """``stat -c '%u %g'`` of every entry under ``root`` (the real tool, not os.stat)."""
    paths = [root, *sorted(root.rglob("*"))]
    out = subprocess.run(["stat", "-c", "%u %g %n", *map(str, paths)], capture_output=True, text=True,
                         check=True).stdout
    owners = {}
    for line in out.splitlines():
        uid, gid, name = line.split(" ", 2)
        owners[name] = (int(uid), int(gid))
    return owners


def test_layout_export_and_phase_outputs_belong_to_the_cnb_user(user_ws: UserWorkspace) -> None:
    code, out = user_ws.creator()
    assert code == 0, out
    image = user_ws.image_dir()
    owners = _owners(image)
    assert any(name.endswith("index.json") for name in owners)
    assert len([n for n in owners if "/blobs/sha256/" in n]) >= 5
    wrong = {name: who for name, who in owners.items() if who != (UID, GID)}
    assert not wrong, wrong
    for path in ("analyzed.toml", "group.toml", "plan.toml", "report.toml", "config/metadata.toml"):
        assert _owners(user_ws.layers / path) == {str(user_ws.layers / path): (UID, GID)}, path
    cache = _owners(user_ws.cache)
    assert len(cache) > 1 and set(cache.values()) == {(UID, GID)}, cache
    # the layers dir itself was root's: the creator's setup handed it over
    assert _owners(user_ws.layers)[str(user_ws.layers)] == (UID, GID)
    res = subprocess.run([require_tool("oci-image-tool"), "validate", "--type", "image", str(image)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # the user can remove what the export wrote (pack's oci: bind-mounts the user's directory)
    res = subprocess.run(["rm", "-rf", str(image)], capture_output=True, text=True, user=UID, group=GID,
                         extra_groups=[])
    assert res.returncode == 0 and not image.exists(), res.stderr
    assert os.geteuid() == 0


def test_an_output_layout_dir_made_by_root_is_handed_to_the_cnb_user(user_ws: UserWorkspace) -> None:
    """pack creates ``oci:<dir>``'s directory as the user running it (root here) and mounts it at the
    output image's layout path: the creator hands that directory over before it drops."""
    image = user_ws.image_dir()
    image.mkdir(parents=True, mode=0o755)
    for path in (image, image.parent, image.parent.parent):
        os.chown(path, 0, 0)
    code, out = user_ws.creator()
    assert code == 0, out
    owners = _owners(image)
    assert any(name.endswith("index.json") for name in owners)
    wrong = {name: who for name, who in owners.items() if who != (UID, GID)}
    assert not wrong, wrong
    assert _owners(image.parent)[str(image.parent)] == (0, 0)  # only the layout dir itself changed hands
