"""The differences from upstream we keep, one row each. spec/upstream-differences.md lists the same
ids with the reasons; tests/differential/test_known_differences.py checks that the two agree.

``fields`` are fnmatch patterns over the keys :mod:`tests.differential.compare` produces
(``<artifact>/<field path>``); a differing field that no pattern covers fails the differential test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    """One kept difference: the compared fields it covers and a short reason."""

    fields: tuple[str, ...]
    reason: str


KNOWN: dict[str, Known] = {
    "oci-media-types": Known(
        ("index/descriptor/mediaType", "manifest/mediaType", "manifest/config/mediaType", "manifest/layer-mediaTypes"),
        "D5: OCI media types throughout, also on top of a Docker-typed run image"),
    "manifest-size": Known(
        ("report.toml/image/manifest-size",),
        "follows from oci-media-types: a different manifest"),
    "report-digest": Known(
        ("report.toml/image/digest",),
        "D5: report.toml names the saved manifest digest in layout mode too"),
    "run-config-kept": Known(
        ("config/container_config/*", "config/config/AttachStdin", "config/config/AttachStdout",
         "config/config/AttachStderr", "config/config/Tty", "config/config/OpenStdin", "config/config/StdinOnce"),
        "the run image's config object is kept as it is; upstream re-encodes it through ggcr's struct"),
    "run-image-digest": Known(
        ("config/labels/io.buildpacks.lifecycle.metadata/runImage/reference",
         "analyzed.toml/metadata/run-image/reference"),
        "the label names the run image's manifest digest; upstream's names no manifest in the layout"),
    "run-image-name": Known(
        ("config/labels/io.buildpacks.lifecycle.metadata/runImage/image",
         "config/labels/io.buildpacks.lifecycle.metadata/stack/runImage/image"),
        "without run.toml the label names the run image analyzed.toml names, so the rebaser finds it"),
    "lifecycle-version": Known(
        ("config/labels/io.buildpacks.build.metadata/launcher/version",),
        "the label names this lifecycle's version"),
    "config-layer-launch-table": Known(
        ("config/diff_ids/*:Buildpacks Launcher Config", "config/labels/io.buildpacks.lifecycle.metadata/config/sha"),
        "the config layer also holds launch.table, which our launcher reads"),
    "lifecycle-sbom-files": Known(
        ("config/diff_ids/*:Software Bill-of-Materials", "config/labels/io.buildpacks.lifecycle.metadata/sbom/sha"),
        "the SBOM layer holds this lifecycle's own SBOM files (its name, version, the launcher), not upstream's"),
}
