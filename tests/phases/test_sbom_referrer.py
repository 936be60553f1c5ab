"""The launch SBOM files the referrers are made of: regular ``sbom.<ext>`` files only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lifecycle.errors import ImageError
from lifecycle.phases.sbom_referrer import launch_sbom_files


def test_only_regular_sbom_files_are_read(tmp_path: Path) -> None:
    launch = tmp_path / "sbom" / "launch"
    (launch / "acme_one" / "web").mkdir(parents=True)
    (launch / "acme_one" / "web" / "sbom.cdx.json").write_text('{"bomFormat":"CycloneDX"}')
    (launch / "acme_one" / "sbom.syft.json").write_text("{}")
    (launch / "acme_one" / "notes.json").write_text("not an SBOM")
    (launch / "acme_two").mkdir()
    (launch / "acme_two" / "sbom.spdx.json").symlink_to("/etc/passwd")  # a buildpack's trick: left out
    os.mkfifo(launch / "acme_two" / "sbom.cdx.json")  # never opened, never hangs
    assert launch_sbom_files(tmp_path) == {"acme_one/web/sbom.cdx.json": b'{"bomFormat":"CycloneDX"}',
                                           "acme_one/sbom.syft.json": b"{}"}


def test_no_launch_sbom_dir(tmp_path: Path) -> None:
    assert launch_sbom_files(tmp_path) == {}


def test_a_symlinked_launch_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "sbom").mkdir()
    (tmp_path / "sbom" / "launch").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ImageError, match="cannot read the launch SBOM"):
        launch_sbom_files(tmp_path)
