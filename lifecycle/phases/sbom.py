"""The launch SBOM of the previous image: restored by the analyzer into ``<layers>/sbom/launch``
(upstream does this from Platform API 0.8), so buildpacks that reuse launch layers keep their
SBOM. The layer comes from the layout, the registry (streamed) or the Docker daemon (``docker
save`` streamed, only that layer kept); it is verified against its diffID before it replaces
anything, and a missing (sparse) or bad layer is only a warning."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lifecycle.errors import ImageError
from lifecycle.image.model import loads
from lifecycle.image.store import ImageStore, StoredImage

LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"


def restore_previous_sbom(image: StoredImage, layers: Path, logger: Any, store: ImageStore) -> bool:
    """Extract the previous image's SBOM layer into ``<layers>/sbom/launch``; True when restored."""
    try:
        label = loads(image.config.labels.get(LIFECYCLE_LABEL) or "{}")
    except ValueError:
        return False
    sbom = label.get("sbom") if isinstance(label, dict) else None
    sha = sbom.get("sha", "") if isinstance(sbom, dict) else ""
    if not sha:
        return False
    if sha not in image.diff_ids:
        logger.warning(f"Not restoring SBOM from previous image: it has no layer {sha}")
        return False
    # tar extraction (and tarfile) only when there is an SBOM to restore: a cold export never loads it
    from lifecycle.archive import ArchiveError, HashingReader, extract_layer, remove_tree

    prev_layers = _env(image, "CNB_LAYERS_DIR") or "/layers"
    target = layers / "sbom" / "launch"
    staging = layers / "sbom" / f".launch-restore-{os.getpid()}"
    try:
        with store.open_layer(image, sha, layers) as stream:
            logger.info("Restoring data for SBOM from previous image")
            reader = HashingReader(stream)
            extract_layer(reader, staging, f"{prev_layers.rstrip('/')}/sbom/launch")
            reader.drain()
        if reader.digest != sha:
            raise ArchiveError(f"layer has diffID {reader.digest}, want {sha}")
    except (ArchiveError, ImageError, OSError, EOFError) as exc:
        remove_tree(staging)
        logger.warning(f"Not restoring SBOM from previous image: {exc}")
        return False
    if target.exists():
        remove_tree(target)
    os.replace(staging, target)
    return True


def _env(image: StoredImage, key: str) -> str:
    for line in image.config.config.Env or []:
        name, _, value = line.partition("=")
        if name == key:
            return value
    return ""


# ---- the lifecycle's own SBOM files (written by the exporter) --------------------------------------
LIFECYCLE_SBOM_DIR = "buildpacksio_lifecycle"
SBOM_CREATED = "1980-01-01T00:00:01Z"


def write_lifecycle_sboms(layers: Path, version: str) -> list[Path]:
    """Write the lifecycle's own SBOM files, as upstream's exporter copies its shipped ones:
    ``<layers>/sbom/build/buildpacksio_lifecycle/sbom.<cdx|spdx>.json`` (the lifecycle) and
    ``<layers>/sbom/launch/buildpacksio_lifecycle/launcher/sbom.<cdx|spdx>.json`` (the launcher put
    into the image). So ``<layers>/sbom`` exists after every export, buildpack SBOMs or not (pack's
    ``--sbom-output-dir`` copies it). Same version, same bytes. Returns the files written."""
    targets = [(layers / "sbom" / "build" / LIFECYCLE_SBOM_DIR, "lifecycle"),
               (layers / "sbom" / "launch" / LIFECYCLE_SBOM_DIR / "launcher", "launcher")]
    written: list[Path] = []
    for directory, component in targets:
        directory.mkdir(parents=True, exist_ok=True)
        for ext, doc in (("cdx", _cyclonedx(component, version)), ("spdx", _spdx(component, version))):
            path = directory / f"sbom.{ext}.json"
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
            written.append(path)
    return written


def _purl(component: str, version: str) -> str:
    return f"pkg:pypi/cnb-lifecycle@{version}" + ("#launcher" if component == "launcher" else "")


def _cyclonedx(component: str, version: str) -> dict[str, Any]:
    comp = {"type": "application", "name": component, "version": version, "purl": _purl(component, version),
            "licenses": [{"license": {"id": "Apache-2.0"}}], "bom-ref": _purl(component, version)}
    return {"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
            "metadata": {"timestamp": SBOM_CREATED, "tools": [{"vendor": "buildpacksio", "name": "lifecycle",
                                                                "version": version}],
                         "component": comp},
            "components": [comp]}


def _spdx(component: str, version: str) -> dict[str, Any]:
    return {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
            "name": f"buildpacksio-lifecycle-{component}",
            "documentNamespace": f"https://buildpacks.io/spdx/cnb-lifecycle/{component}-{version}",
            "creationInfo": {"created": SBOM_CREATED, "creators": [f"Tool: cnb-lifecycle-{version}"]},
            "packages": [{"name": component, "SPDXID": f"SPDXRef-Package-{component}", "versionInfo": version,
                          "downloadLocation": "NOASSERTION", "licenseConcluded": "Apache-2.0",
                          "licenseDeclared": "Apache-2.0", "copyrightText": "NOASSERTION",
                          "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                            "referenceLocator": _purl(component, version)}]}],
            "documentDescribes": [f"SPDXRef-Package-{component}"]}
