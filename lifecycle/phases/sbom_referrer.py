"""The launch SBOM as OCI 1.1 referrers of the app image (``-sbom-referrer``, beyond upstream).

After the app image is saved, the exporter reads the files of its SBOM layer's source,
``<layers>/sbom/launch``, and the store attaches one artifact per SBOM format present
(:mod:`lifecycle.image.referrers`) wherever it saved the image. Buildpacks wrote those files, so
they are read as untrusted input: regular files only, opened without following symlinks (a symlink
named ``sbom.cdx.json`` is left out, as it is a symlink in the layer too), each at most
:data:`MAX_SBOM_FILE` bytes.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from lifecycle.errors import ImageError
from lifecycle.fs.tree import Tree, TreeError
from lifecycle.image.referrers import SBOM_FORMATS, sbom_artifacts, subject_of
from lifecycle.image.store import ImageStore, Saved, Staging

MAX_SBOM_FILE = 256 * 1024 * 1024
_NAMES = {f"sbom.{ext}" for ext in SBOM_FORMATS}


def launch_sbom_files(layers: Path) -> dict[str, bytes]:
    """``<path relative to <layers>/sbom/launch>`` -> bytes of each SBOM file (``sbom.<ext>``)."""
    root = layers / "sbom" / "launch"
    out: dict[str, bytes] = {}
    try:
        with Tree.open(layers) as tree:
            if tree.lstat("sbom/launch") is None:
                return out
            with tree.subtree("sbom/launch") as launch:
                for entry in launch.walk():
                    if entry.is_regular and entry.rel.rsplit("/", 1)[-1] in _NAMES:
                        out[entry.rel] = launch.read_bounded(entry.rel, MAX_SBOM_FILE)
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            return out
        raise ImageError(f"cannot read the launch SBOM in {root}: {exc}") from None
    return out


def attach_launch_sbom(store: ImageStore, staging: Staging, saved: Saved, layers: Path, logger: Any) -> int:
    """Attach the launch SBOM to the saved app image wherever it was saved; returns how many
    artifacts were attached."""
    artifacts = sbom_artifacts(launch_sbom_files(layers), subject_of(saved.digest, saved.manifest_size))
    if not artifacts:
        logger.info("No launch SBOM to attach")
        return 0
    store.attach(staging, saved, artifacts, lambda where: logger.info(f"Saving SBOM referrer {where}..."))
    return len(artifacts)
