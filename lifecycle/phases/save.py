"""The save step shared by the exporter and the rebaser (upstream's ``phase/save.go``).

The store saves the assembled image under the output name and each tag, announcing each with
``Saving <where>...``; then the ``*** Images (<digest or image ID>):`` block names what was saved,
and :class:`ExportResult` carries what ``report.toml`` records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.files import report
from lifecycle.image.draft import Draft
from lifecycle.image.store import ImageStore, Staging


@dataclass
class ExportResult:
    """What was saved: for report.toml and the caller's logs."""

    digest: str
    manifest_size: int
    paths: list[str]  # layout paths, or the references pushed / loaded
    reused: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    image_id: str = ""  # daemon mode


def save_image(store: ImageStore, staging: Staging, draft: Draft, names: Sequence[str], logger: Any) -> ExportResult:
    """Save ``draft`` under ``names`` (output image first) and log what was saved."""
    saved = store.save(staging, draft, names, lambda where: logger.info(f"Saving {where}..."))
    logger.info(f"*** Images ({saved.image_id or saved.digest}):")
    for name in saved.names:
        logger.info(f"      {name}")
    if saved.image_id:
        logger.info(f"*** Image ID: {saved.image_id}")
    elif saved.registry_digest:
        logger.info(f"*** Digest: {saved.registry_digest}")
    logger.info(f"*** Manifest Size: {saved.manifest_size}")
    return ExportResult(saved.digest, saved.manifest_size, saved.names, image_id=saved.image_id)


def write_report(path: Path, result: ExportResult) -> None:
    """report.toml: what was saved, with the manifest digest and size (D5), or the image ID."""
    report.write(path, tags=result.paths, digest="" if result.image_id else result.digest,
                 manifest_size=result.manifest_size, image_id=result.image_id)
