"""The exporter: plan, build, assemble and save the app image (decision D5).

1. **Plan** (:mod:`lifecycle.phases.export_plan`): the layers in image order and what each may
   reuse from the previous image; nothing is written.
2. **Build**: new layers are tarred and compressed in parallel threads, streamed into blobs of the
   store's staging layout (a registry store may upload each as soon as it is complete, a large
   one while it is written); a layer
   whose diffID matches the previous image's is reused instead.
3. **Assemble** (:func:`lifecycle.phases.export_config.app_draft`): the run image plus the layers,
   config and labels, as a :class:`~lifecycle.image.draft.Draft`.
4. **Save** (:func:`lifecycle.phases.save.save_image`): the store writes it under the output name
   and each tag; for layouts ``index.json`` is replaced last, atomically, so a failed or killed
   export leaves the target layout as it was. Layers the store's staging says it lacks (the Docker
   daemon's, whose layer chain it does not hold) get their bytes first
   (:mod:`lifecycle.phases.daemon_export`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.errors import ExitCode, ImageError, InputError, LifecycleError
from lifecycle.files import metadata as metadata_file
from lifecycle.files._toml import load as read_toml
from lifecycle.image import model as m
from lifecycle.image.draft import Draft, Part
from lifecycle.image.parts import layer_descriptors, oci_layer, ref_name
from lifecycle.image.store import ImageStore, Saved, Staging, StoredImage
from lifecycle.launch.table import write_table
from lifecycle.layers.blob import build_layer, diff_id_of
from lifecycle.phases import export_config as cfg
from lifecycle.phases.daemon_export import Layer as ImageLayer
from lifecycle.phases.daemon_export import fill, update_launch_cache
from lifecycle.phases.export_plan import ExportPlan, LayerPlan, PlanInputs, Slot, fail, plan_export, read_metadata
from lifecycle.phases.save import ExportResult, save_image
from lifecycle.phases.sbom_referrer import attach_launch_sbom
from lifecycle.process import release_free_memory

DEFAULT_CREATED = "1980-01-01T00:00:01Z"


@dataclass(frozen=True)
class ExportInputs:
    """Resolved inputs of the exporter."""

    output_image: str
    tags: tuple[str, ...]
    run_image: str
    previous_image: str
    app: Path
    layers: Path
    group: Path
    launcher: Path
    process_type: str
    project_metadata: Path
    run: Path
    uid: int
    gid: int
    platform_api: str
    exec_env: str = "production"
    created: str = DEFAULT_CREATED
    workers: int = 2
    launch_cache: Path | None = None  # daemon mode: upstream's launch cache volume
    sbom_referrer: bool = False  # also attach the launch SBOM as OCI referrers (phases/sbom_referrer.py)


@dataclass(frozen=True)
class Built:
    """A layer of the app image after the build step."""

    plan: LayerPlan
    part: Part
    reused: bool
    seconds: float = 0.0


def export(inputs: ExportInputs, store: ImageStore, logger: Any) -> ExportResult:
    """Build and save the app image; returns its digest and where it was saved."""
    try:
        return _export(inputs, store, logger)
    except ImageError as exc:
        raise LifecycleError(f"failed to export: {exc}", ExitCode.EXPORT) from None
    except OSError as exc:
        raise LifecycleError(f"failed to export: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                             ExitCode.EXPORT) from None


def _export(inputs: ExportInputs, store: ImageStore, logger: Any) -> ExportResult:
    run_image = store.find(inputs.run_image)
    if run_image is None:
        raise InputError(f"the run-image could not be found {store.where_missing(inputs.run_image)}")
    previous, prev_label = _previous(inputs, store, logger)
    if previous is not None:
        logger.info(f"Reusing layers from image '{previous.path}'")
    prev_by_diff = _descriptors_by_diff(previous)
    # 1. plan
    plan = plan_export(PlanInputs(app=inputs.app, layers=inputs.layers, group=inputs.group, launcher=inputs.launcher,
                                  process_type=inputs.process_type, uid=inputs.uid, gid=inputs.gid),
                       read_metadata(inputs.layers), prev_label, prev_by_diff, logger)
    config_dir = inputs.layers / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    write_table(config_dir, plan.metadata)
    with store.staging(inputs.output_image, inputs.layers) as staging:
        # 2. build
        release_free_memory()  # what planning freed, before the layers' buffers are allocated
        built = build_layers(plan.layers, staging, previous, prev_by_diff, inputs.workers, logger)
        # 3. assemble
        draft = assemble(inputs, plan, run_image, built, logger)
        # 4. save (first the bytes of the layers the store lacks: the daemon's, whose chain it lacks)
        layers = _image_layers(run_image, built)
        lacking = staging.lacking(layers, [run_image, previous])
        if lacking:
            _fill(inputs, store, staging, lacking, previous, logger)
        result = save_image(store, staging, draft, [inputs.output_image, *inputs.tags], logger)
        if inputs.sbom_referrer:
            attach_launch_sbom(store, staging, Saved(result.digest, result.manifest_size, result.paths),
                               inputs.layers, logger)
        if inputs.launch_cache is not None:  # daemon mode only (platform.resolve)
            update_launch_cache(inputs.launch_cache, layers[len(run_image.diff_ids):], staging.layout, logger)
    result.reused = [b.plan.key for b in _log_order(built) if b.reused]
    result.added = [b.plan.key for b in _log_order(built) if not b.reused]
    return result


def _previous(inputs: ExportInputs, store: ImageStore, logger: Any) -> tuple[StoredImage | None, dict[str, Any]]:
    if not inputs.previous_image:
        return None, {}
    try:
        image = store.find(inputs.previous_image)
    except ImageError as exc:
        logger.warning(f"Ignoring previous image {inputs.previous_image}: {exc}")
        return None, {}
    if image is None:
        return None, {}
    try:
        label = m.loads(image.config.labels.get(cfg.LIFECYCLE_LABEL) or "{}")
    except ValueError:
        label = {}
    return image, label if isinstance(label, dict) else {}


def _descriptors_by_diff(image: StoredImage | None) -> dict[str, m.Descriptor]:
    if image is None:
        return {}
    return dict(zip(image.diff_ids, layer_descriptors(image), strict=True))


def _image_layers(run_image: StoredImage, built: list[Built]) -> list[ImageLayer]:
    """Every layer of the app image, in order, with where its bytes can be rebuilt from."""
    run = [ImageLayer(diff, desc.digest, "run image layer")
           for diff, desc in zip(run_image.diff_ids, layer_descriptors(run_image), strict=True)]
    return run + [ImageLayer(b.part.diff_id, b.part.descriptor.digest, b.plan.key, b.plan.entries) for b in built]


def _fill(inputs: ExportInputs, store: ImageStore, staging: Staging, lacking: list[ImageLayer],
          previous: StoredImage | None, logger: Any) -> None:
    """Put into the staging layout the bytes of every layer the store lacks: from the launch cache,
    the previous image, or the layers directory (``daemon_export``)."""
    for item in fill(staging.layout, lacking, launch_cache=inputs.launch_cache, store=store, previous=previous,
                     scratch_parent=inputs.layers):
        logger.debug(f"Layer '{item.key}' ({item.diff_id}) is new to the daemon below reused layers: its bytes "
                     f"come from the {item.source}")


# ---- 2. build ------------------------------------------------------------------------------------
def build_layers(plans: tuple[LayerPlan, ...], staging: Staging, previous: StoredImage | None,
                 prev_by_diff: dict[str, m.Descriptor], workers: int, logger: Any) -> list[Built]:
    """Every planned layer, in plan order: built into ``staging`` (in ``workers`` threads) or
    reused from ``previous``. Logged in layer order; layers reused as they are, last."""
    to_build = [p for p in plans if p.entries is not None]
    by_key: dict[str, Built] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: list[Future[Built]] = [pool.submit(_build_one, p, staging, previous) for p in to_build]
        app_total = sum(1 for p in to_build if p.slot is Slot.APP)
        app_seen = app_reused = 0
        for future in futures:
            built = future.result()  # in plan order, so the log reads in layer order
            by_key[built.plan.key] = built
            if built.plan.slot is not Slot.APP:
                _log_layer(built, logger)
                continue
            app_seen += 1
            app_reused += built.reused
            if app_seen == app_total:
                if app_reused:
                    logger.info(f"Reused {app_reused}/{app_total} app layer(s)")
                if app_total - app_reused:
                    logger.info(f"Added {app_total - app_reused}/{app_total} app layer(s)")
    for plan in plans:
        if plan.entries is None:
            desc = prev_by_diff.get(plan.reuse_diff_id)
            if desc is None or previous is None:
                raise fail(f"cannot reuse '{plan.key}', previous image has no layer with diffID {plan.reuse_diff_id}")
            logger.info(f"Reusing layer '{plan.key}'")
            by_key[plan.key] = Built(plan, Part(oci_layer(desc), plan.reuse_diff_id, previous), True)
    return [by_key[p.key] for p in plans]


def _build_one(plan: LayerPlan, staging: Staging, previous: StoredImage | None) -> Built:
    assert plan.entries is not None
    if plan.reuse and previous is not None:
        diff_id = diff_id_of(plan.entries())
        desc = plan.reuse.get(diff_id)
        if desc is not None:
            return Built(plan, Part(oci_layer(desc), diff_id, previous), True)
    layer = build_layer(plan.entries(), staging)
    staging.blob_added(layer.descriptor)
    return Built(plan, Part(layer.descriptor, layer.diff_id), False, layer.seconds)


def _log_layer(built: Built, logger: Any) -> None:
    if built.reused:
        logger.info(f"Reusing layer '{built.plan.key}'")
    else:
        logger.info(f"Adding layer '{built.plan.key}' ({_human(built.part.descriptor.size)}, {built.seconds:.2f}s)")


def _log_order(built: list[Built]) -> Iterator[Built]:
    """Built layers first, then the ones reused as they are (as the log names them)."""
    yield from (b for b in built if b.plan.entries is not None)
    yield from (b for b in built if b.plan.entries is None)


# ---- 3. assemble ---------------------------------------------------------------------------------
def assemble(inputs: ExportInputs, plan: ExportPlan, run_image: StoredImage, built: list[Built],
             logger: Any) -> Draft:
    """The app image: the run image, the built layers, the config and the labels."""
    labels = _labels(inputs, plan, run_image, built)
    if plan.entrypoint:
        logger.info(f"Setting default process type '{plan.entrypoint}'")
    else:
        logger.info("no default process type")
    for key in (cfg.LIFECYCLE_LABEL, cfg.BUILD_LABEL, cfg.PROJECT_LABEL):
        logger.info(f"Adding label '{key}'")
    env = {"CNB_LAYERS_DIR": os.path.abspath(inputs.layers), "CNB_APP_DIR": os.path.abspath(inputs.app),
           "CNB_PLATFORM_API": inputs.platform_api, "CNB_DEPRECATION_MODE": "quiet"}
    draft = cfg.app_draft(run_image, layers=[(b.part, b.plan.created_by) for b in built], entrypoint=plan.entrypoint,
                          env=env, working_dir=os.path.abspath(inputs.app), created=inputs.created, labels=labels)
    return draft.annotate({m.REF_NAME: ref_name(inputs.output_image)})


def _labels(inputs: ExportInputs, plan: ExportPlan, run_image: StoredImage, built: list[Built]) -> dict[str, str]:
    from lifecycle import __version__

    shas = {b.plan.key: b.part.diff_id for b in built if b.plan.slot is Slot.BUILDPACK}
    buildpacks = [bp.with_shas(shas) for bp in plan.buildpacks]
    slots = {b.plan.slot.value: b.part.diff_id for b in built if b.plan.slot not in (Slot.BUILDPACK, Slot.APP)}
    app = [b.part.diff_id for b in built if b.plan.slot is Slot.APP]
    run_entry = cfg.run_toml_entry(inputs.run, inputs.run_image, run_image)
    meta: metadata_file.BuildMetadata = plan.metadata
    labels = {
        cfg.LIFECYCLE_LABEL: cfg.compact_json(cfg.lifecycle_label(run_image, app=app, slots=slots,
                                                                   buildpacks=buildpacks, run_entry=run_entry)),
        cfg.BUILD_LABEL: cfg.compact_json(cfg.build_label(meta, __version__)),
        cfg.PROJECT_LABEL: cfg.compact_json(read_toml(inputs.project_metadata, missing_ok=True) or {}),
    }
    if inputs.exec_env:
        labels[cfg.EXEC_ENV_LABEL] = inputs.exec_env
    labels.update({label.key: label.value for label in meta.labels})
    return labels


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
