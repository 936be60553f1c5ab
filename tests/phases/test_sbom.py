"""The analyzer restores the previous image's launch SBOM into <layers>/sbom/launch."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli.test_exporter import Workspace, blobs, make_workspace
from tests.conftest import Run


def _with_sbom(tmp_path: Path, run: Run) -> tuple[Workspace, Path]:
    ws = make_workspace(tmp_path)
    sbom = ws.layers / "sbom" / "launch" / "acme_bp" / "launch-layer"
    sbom.mkdir(parents=True)
    (sbom / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX"}\n')
    ws.analyze(run)
    out = ws.export(run)
    assert "Adding layer 'buildpacksio/lifecycle:launch.sbom'" in out
    shutil.rmtree(ws.layers / "sbom")
    return ws, sbom / "sbom.cdx.json"


def test_previous_sbom_is_restored(run: Run, tmp_path: Path) -> None:
    ws, sbom_file = _with_sbom(tmp_path, run)
    out = ws.analyze(run)
    assert "Restoring data for SBOM from previous image" in out
    assert sbom_file.read_text() == '{"bomFormat": "CycloneDX"}\n'
    assert not list((ws.layers / "sbom").glob(".launch-restore-*"))


def test_skip_layers_does_not_restore_the_sbom(run: Run, tmp_path: Path) -> None:
    ws, _ = _with_sbom(tmp_path, run)
    out = ws.analyze(run, "-skip-layers")
    assert "Restoring data for SBOM" not in out
    assert not (ws.layers / "sbom").exists()


def test_sparse_previous_sbom_is_a_warning(run: Run, tmp_path: Path) -> None:
    ws, sbom_file = _with_sbom(tmp_path, run)
    _digest, manifest, config = ws.manifest()
    diff_ids = config["rootfs"]["diff_ids"]  # type: ignore[index]
    import json

    label = json.loads(config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"])  # type: ignore[index]
    layer = manifest["layers"][diff_ids.index(label["sbom"]["sha"])]  # type: ignore[index]
    before = blobs(ws.image_dir())
    (ws.image_dir() / "blobs" / "sha256" / layer["digest"].split(":")[1]).unlink()
    out = ws.analyze(run)
    assert "Warning: Not restoring SBOM from previous image" in out
    assert not sbom_file.exists()
    assert len(blobs(ws.image_dir())) == len(before) - 1


LAUNCHER_SBOM = Path("sbom/launch/buildpacksio_lifecycle/launcher")
LIFECYCLE_SBOM = Path("sbom/build/buildpacksio_lifecycle")


def _lifecycle_sboms_present(layers: Path) -> None:
    import json

    for directory, name in ((LAUNCHER_SBOM, "launcher"), (LIFECYCLE_SBOM, "lifecycle")):
        cdx = json.loads((layers / directory / "sbom.cdx.json").read_text())
        spdx = json.loads((layers / directory / "sbom.spdx.json").read_text())
        assert cdx["bomFormat"] == "CycloneDX" and cdx["metadata"]["component"]["name"] == name
        assert spdx["spdxVersion"] == "SPDX-2.3" and spdx["packages"][0]["name"] == name


def test_layers_sbom_exists_after_export_without_buildpack_sboms(run: Run, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ws.analyze(run)
    assert not (ws.layers / "sbom").exists()
    out = ws.export(run)
    _lifecycle_sboms_present(ws.layers)
    assert "Adding layer 'buildpacksio/lifecycle:launch.sbom'" in out  # the launcher's SBOM goes into the image


def test_layers_sbom_exists_after_export_with_buildpack_sboms(run: Run, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    sbom = ws.layers / "sbom" / "launch" / "acme_bp" / "launch-layer"
    sbom.mkdir(parents=True)
    (sbom / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX"}\n')
    ws.analyze(run)
    ws.export(run)
    _lifecycle_sboms_present(ws.layers)
    assert (sbom / "sbom.cdx.json").read_text() == '{"bomFormat": "CycloneDX"}\n'
    # Next build: the analyzer restores both from the image.
    shutil.rmtree(ws.layers / "sbom")
    out = ws.analyze(run)
    assert "Restoring data for SBOM from previous image" in out
    assert (sbom / "sbom.cdx.json").is_file()
    assert (ws.layers / LAUNCHER_SBOM / "sbom.cdx.json").is_file()
