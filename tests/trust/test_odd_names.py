"""Output names that would write into a layout's own entries (``blobs``, ``index.json``,
``oci-layout``) or that name a digest are refused up front: one ``ERROR:`` line, exit 3, nothing
written (spec/trust-model.md, spec/exit-codes.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_MANIFEST, LAYOUT_REPO, base_env, run_program
from tests.trust.test_hostile_layouts import _state

DIGEST = BUSYBOX_MANIFEST
BUSYBOX_BLOBS = "index.docker.io/library/busybox/latest/blobs:sha256"  # resolves to busybox's blobs/sha256

# (the image, an extra tag or "", the expected part of the message)
CASES: dict[str, tuple[str, str, str]] = {
    "image names a digest": (f"my-app@{DIGEST}", "", "names a digest"),
    "an extra tag names a digest": ("my-app", f"other@{DIGEST}", "names a digest"),
    "image is another layout's blobs dir": (BUSYBOX_BLOBS, "", "layout's own 'blobs' entry"),
    "tag index.json": ("my-app:index.json", "", "layout's own 'index.json' entry"),
    "extra tag oci-layout": ("my-app", "my-app:oci-layout", "layout's own 'oci-layout' entry"),
    "repository component blobs": ("my-app/blobs/x", "", "layout's own 'blobs' entry"),
    "a path into a layout's blobs": ("{root}/index.docker.io/library/busybox/latest/blobs", "", "'blobs' entry"),
}
# The analyzer takes extra tags as -tag, the exporter and rebaser as arguments after the image.
RUNS = [(phase, case) for phase in ("analyzer", "exporter", "rebaser") for case in CASES]
# -cache-image oci:<ref>: the analyzer (and so the creator) refuses it; the exporter only warns (no cache).
RUNS.append(("analyzer", "cache image in another layout's blobs"))
CASES["cache image in another layout's blobs"] = ("my-app", "", "'blobs' entry")


@pytest.mark.parametrize(("phase", "case"), RUNS)
def test_output_names_colliding_with_layout_entries_or_naming_digests(tmp_path: Path, phase: str,
                                                                      case: str) -> None:
    image, tag, message = CASES[case]
    extra: list[str] = []
    if case.startswith("cache image"):
        extra = ["-cache-image", f"oci:{BUSYBOX_BLOBS}"]
    elif tag and phase == "analyzer":
        extra = ["-tag", tag]
    root = tmp_path / "oci"
    shutil.copytree(LAYOUT_REPO, root, symlinks=True)
    (tmp_path / "layers").mkdir()
    before = _state(tmp_path)
    args = ["-oci", "-oci-dir", str(root), *extra]
    if phase != "rebaser":
        args += ["-layers", str(tmp_path / "layers")]
    if phase == "analyzer":
        args += ["-run-image", "busybox"]
    tags = [tag] if tag and phase != "analyzer" else []
    res = run_program(phase, *args, image.format(root=root), *tags, env=base_env(), timeout=60)
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR:")]
    assert res.returncode == 3, res.stdout
    assert len(errors) == 1 and message in errors[0], res.stdout
    assert errors[0].startswith("ERROR: failed to parse arguments: output image '"), errors[0]
    assert "Traceback" not in res.stdout
    assert _state(tmp_path) == before
