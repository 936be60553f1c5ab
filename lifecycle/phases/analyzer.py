"""The analyzer: find the run image and the previous image, and describe them in analyzed.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.errors import ExitCode, ImageError, InputError, LifecycleError
from lifecycle.files.analyzed import Analyzed, Distro, PreviousImage, RunImage, Target, label_to_toml
from lifecycle.image.model import loads
from lifecycle.image.store import ImageStore
from lifecycle.image.store import StoredImage as Image

LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"


@dataclass(frozen=True)
class AnalyzeInputs:
    """Resolved inputs of the analyzer."""

    output_image: str
    run_image: str
    previous_image: str
    skip_layers: bool = False
    layers: Path | None = None  # where the previous image's launch SBOM is restored


def target_of(image: Image) -> Target:
    """``[run-image.target]`` from the config and the ``io.buildpacks.base.*`` labels."""
    config, labels = image.config, image.config.labels
    if not config.os:
        raise LifecycleError("failed to analyze: failed to find OS in run image config", ExitCode.ANALYZE)
    distro = None
    name = labels.get("io.buildpacks.base.distro.name")
    version = labels.get("io.buildpacks.base.distro.version")
    if name is not None or version is not None:
        distro = Distro(name=name or "", version=version or "")
    return Target(id=labels.get("io.buildpacks.base.id") or None, os=config.os, arch=config.architecture,
                  arch_variant=config.variant or None, distro=distro)


def previous_metadata(image: Image) -> dict[str, Any]:
    """The previous image's lifecycle label as ``[metadata]``; undecodable labels count as empty."""
    raw = image.config.labels.get(LIFECYCLE_LABEL)
    if not raw:
        return {}
    try:
        label = loads(raw)
    except ValueError:
        return {}
    return label_to_toml(label) if isinstance(label, dict) else {}


def run_image_missing(store: ImageStore, reference: str) -> str:
    """D6's message: layouts name the paths tried; registries and daemons the reference."""
    return f"the run-image could not be found {store.where_missing(reference)}"


def analyze(inputs: AnalyzeInputs, store: ImageStore, logger: Any) -> Analyzed:
    """Read both images and return what analyzed.toml records."""
    try:
        previous = store.find(inputs.previous_image) if inputs.previous_image else None
    except ImageError as exc:
        raise LifecycleError(f"failed to analyze: reading previous image: {exc}", ExitCode.ANALYZE) from None
    if previous is None:
        if inputs.previous_image:
            logger.info(f'Image with name "{store.where(inputs.previous_image)}" not found')
        prev_table, metadata = PreviousImage(reference=""), {}
    else:
        prev_table, metadata = PreviousImage(reference=previous.identifier), previous_metadata(previous)
    try:
        run = store.find(inputs.run_image)
    except ImageError as exc:
        raise LifecycleError(f"failed to analyze: reading run image: {exc}", ExitCode.ANALYZE) from None
    if run is None:
        raise InputError(run_image_missing(store, inputs.run_image))
    run_table = RunImage(reference=run.identifier, image=str(run.path), target=target_of(run))
    if previous is not None and inputs.layers is not None and not inputs.skip_layers:
        from lifecycle.phases.sbom import restore_previous_sbom

        restore_previous_sbom(previous, inputs.layers, logger, store)
    return Analyzed(image=prev_table, metadata=metadata, run_image=run_table)


def write_analyzed(path: Path, result: Analyzed) -> None:
    """``analyzed.toml`` (exit 30 when it cannot be written)."""
    from lifecycle.files import analyzed as analyzed_file

    try:
        analyzed_file.write(path, result)
    except OSError as exc:
        raise LifecycleError(f"failed to write analyzed: {exc.strerror or exc}: {path}", ExitCode.ANALYZE) from None
