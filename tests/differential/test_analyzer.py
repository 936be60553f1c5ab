"""Upstream's analyzer and ours on the same layout root: analyzed.toml field by field."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import BUSYBOX_LAYER, BUSYBOX_MANIFEST
from tests.differential import compare
from tests.differential.workspace import Pair, make_pair


def _assert_same_analyzed(pair: Pair) -> None:
    up, ours = (compare.toml_file(side, "analyzed.toml") for side in pair.sides)
    diffs = compare.differences(up, ours)
    assert not diffs, "\n".join(diffs)


def test_run_image(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    pair.analyze()
    _assert_same_analyzed(pair)
    analyzed = compare.toml_file(pair.ours, "analyzed.toml")
    assert analyzed["analyzed.toml/run-image/reference"].endswith("@" + BUSYBOX_MANIFEST)
    assert "analyzed.toml/image/reference" not in analyzed


def test_previous_image(tmp_path: Path) -> None:
    """The previous image is one upstream exported; both analyzers read it from their own root."""
    pair = make_pair(tmp_path)
    pair.analyze()
    pair.run(pair.upstream, "exporter", "-app", str(tmp_path / "app"), "-launcher", str(pair.launcher), "my-app")
    shutil.copytree(pair.upstream.image_dir(), pair.ours.image_dir())
    pair.analyze()
    _assert_same_analyzed(pair)
    analyzed = compare.toml_file(pair.ours, "analyzed.toml")
    assert analyzed["analyzed.toml/image/reference"].startswith("<oci>/index.docker.io/library/my-app/latest@sha256:")
    assert analyzed["analyzed.toml/metadata/buildpacks/0/layers/run/metadata/count"] == 3


def test_sparse_run_image(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    for side in pair.sides:
        (side.oci / "index.docker.io/library/busybox/latest/blobs/sha256" / BUSYBOX_LAYER.split(":")[1]).unlink()
    pair.analyze()
    _assert_same_analyzed(pair)
