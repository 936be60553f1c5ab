"""The exporter's plan: which layers the app image gets, in which order, and what may be reused.

Reads only (``metadata.toml``, ``group.toml``, the buildpacks' ``<layer>.toml`` and ``store.toml``,
the app tree); writes nothing. From the build metadata, the group, the previous image's lifecycle
label and ``<layers>`` it makes typed :class:`LayerPlan` s in image order (upstream-lifecycle.md
§8.1: each buildpack's launch layers in group order then by name, the launch SBOM, app slices then
the rest of the app, the launcher, ``<layers>/config``, the ``/cnb/process`` links) and the label
entries of the buildpacks. A plan's ``entries`` produce the layer's tar entries when called; a
buildpack layer without a directory is reused from the previous image as it is (``entries`` None).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.errors import ExitCode, InputError, LifecycleError
from lifecycle.files import group as group_file
from lifecycle.files import layer as layer_file
from lifecycle.files import metadata as metadata_file
from lifecycle.files._toml import load as read_toml
from lifecycle.image import model as m
from lifecycle.launch.table import render_table
from lifecycle.layers import slices as app_slices
from lifecycle.layers.tar import Entry, dir_entries, parent_entries
from lifecycle.phases.export_config import LAUNCHER_PATH, PROCESS_DIR

BAD_TYPE_CHARS = set("/><:|&\\")

Entries = Callable[[], Iterable[Entry]]


class Slot(enum.Enum):
    """What a layer is, for the lifecycle label (``app``, ``sbom``, ``launcher``, ...)."""

    BUILDPACK = "buildpacks"
    SBOM = "sbom"
    APP = "app"
    LAUNCHER = "launcher"
    CONFIG = "config"
    PROCESS_TYPES = "process-types"


@dataclass(frozen=True)
class LayerPlan:
    """One layer of the app image, before it is built."""

    key: str  # as logged: "<buildpack>:<name>", "buildpacksio/lifecycle:launcher", "app", ...
    created_by: str
    slot: Slot
    entries: Entries | None  # None: a buildpack layer reused as is (``reuse_diff_id``)
    reuse: Mapping[str, m.Descriptor] = field(default_factory=dict)  # diffID -> previous blob
    reuse_diff_id: str = ""


@dataclass(frozen=True)
class BuildpackLabel:
    """A buildpack's entry of the lifecycle label, without the layers' diffIDs (known after build)."""

    key: str
    version: str
    layers: Mapping[str, Mapping[str, Any]]  # name -> {data, build, launch, cache}
    store: Mapping[str, Any] | None

    def with_shas(self, shas: Mapping[str, str]) -> dict[str, Any]:
        """The label entry, each layer's ``sha`` from ``shas`` (keyed ``<buildpack>:<name>``)."""
        layers = {name: {"sha": shas.get(f"{self.key}:{name}", ""), **meta} for name, meta in self.layers.items()}
        entry: dict[str, Any] = {"key": self.key, "version": self.version, "layers": layers}
        if self.store is not None:
            entry["store"] = dict(self.store)
        return entry


@dataclass(frozen=True)
class ExportPlan:
    """Everything the exporter decided before building anything."""

    layers: tuple[LayerPlan, ...]
    buildpacks: tuple[BuildpackLabel, ...]
    metadata: metadata_file.BuildMetadata
    entrypoint: str  # the default process type ("" for none)


@dataclass(frozen=True)
class PlanInputs:
    """What the plan reads."""

    app: Path
    layers: Path
    group: Path
    launcher: Path
    process_type: str
    uid: int
    gid: int


def fail(message: str) -> LifecycleError:
    """An export failure (exit 62)."""
    return LifecycleError(f"failed to export: {message}", ExitCode.EXPORT)


def read_metadata(layers: Path) -> metadata_file.BuildMetadata:
    """``<layers>/config/metadata.toml`` (empty when absent), its process types checked."""
    path = layers / "config" / "metadata.toml"
    if not path.exists():
        return metadata_file.BuildMetadata()
    try:
        meta = metadata_file.read(path)
    except LifecycleError as exc:
        raise fail(str(exc)) from None
    for proc in meta.processes:
        if not proc.type:
            raise fail("type is required for all processes")
        if BAD_TYPE_CHARS & set(proc.type):
            raise fail(f"invalid process type '{proc.type}': type may not contain characters '/><:|&\\'")
    return meta


def plan_export(inputs: PlanInputs, meta: metadata_file.BuildMetadata, prev_label: Mapping[str, Any],
                prev_by_diff: Mapping[str, m.Descriptor], logger: Any) -> ExportPlan:
    """The layers of the app image in order, and the buildpacks' label entries."""
    entrypoint = _entrypoint(meta, inputs.process_type)
    try:
        render_table(meta)
    except ValueError as exc:
        raise fail(f"invalid process metadata: {exc}") from None
    bad_links = app_slices.outside_symlinks(inputs.app) if inputs.app.is_dir() else []
    if bad_links:
        link, target = bad_links[0]
        raise fail(f"app directory contains a symlink pointing outside it: {link} -> {target}")
    if not inputs.app.is_dir():
        raise InputError(f"failed to export: app directory {inputs.app} does not exist")
    plans, labels = _buildpack_layers(inputs, prev_label, prev_by_diff, logger)
    sbom = inputs.layers / "sbom" / "launch"
    if sbom.is_dir():
        plans.append(_dir_plan(inputs, "buildpacksio/lifecycle:launch.sbom", "Software Bill-of-Materials", sbom,
                               Slot.SBOM, _reuse_one(prev_label.get("sbom"), prev_by_diff)))
    plans.extend(_app_plans(inputs, meta, prev_label, prev_by_diff))
    launcher = inputs.launcher
    if not launcher.is_file():
        raise InputError(f"failed to export: launcher {launcher} not found")
    plans.append(LayerPlan("buildpacksio/lifecycle:launcher", "Buildpacks Application Launcher", Slot.LAUNCHER,
                           lambda: _launcher_entries(launcher), _reuse_one(prev_label.get("launcher"), prev_by_diff)))
    plans.append(_dir_plan(inputs, "buildpacksio/lifecycle:config", "Buildpacks Launcher Config",
                           inputs.layers / "config", Slot.CONFIG, _reuse_one(prev_label.get("config"), prev_by_diff)))
    types = [p.type for p in meta.processes]  # metadata.toml order, as upstream writes them
    if types:
        plans.append(LayerPlan("buildpacksio/lifecycle:process-types", "Buildpacks Process Types",
                               Slot.PROCESS_TYPES, lambda: _process_entries(types),
                               _reuse_one(prev_label.get("process-types"), prev_by_diff)))
    return ExportPlan(tuple(plans), tuple(labels), meta, entrypoint)


def _entrypoint(meta: metadata_file.BuildMetadata, wanted: str) -> str:
    if wanted:
        if meta.process(wanted) is None:
            raise fail(f"determining entrypoint: tried to set {wanted} to default but it doesn't exist")
        return wanted
    default = meta.buildpack_default_process_type
    if default and meta.process(default) is not None:
        return default
    return ""


def _dir_plan(inputs: PlanInputs, key: str, created_by: str, src: Path, slot: Slot,
              reuse: Mapping[str, m.Descriptor]) -> LayerPlan:
    uid, gid = inputs.uid, inputs.gid

    def entries() -> Iterable[Entry]:
        image_path = os.path.abspath(src)
        return [*parent_entries(image_path, src), *dir_entries(src, image_path, uid, gid)]

    return LayerPlan(key, created_by, slot, entries, reuse)


def _buildpack_layers(inputs: PlanInputs, prev_label: Mapping[str, Any], prev_by_diff: Mapping[str, m.Descriptor],
                      logger: Any) -> tuple[list[LayerPlan], list[BuildpackLabel]]:
    if inputs.group.exists():
        group = group_file.read(inputs.group).group
    else:
        logger.warning(f'No group file found at path "{inputs.group}"; exporting without buildpack layers')
        group = []
    prev_bps = {bp.get("key"): bp for bp in prev_label.get("buildpacks") or [] if isinstance(bp, dict)}
    plans: list[LayerPlan] = []
    labels: list[BuildpackLabel] = []
    bad: list[str] = []
    for bp in group:
        bp_dir = inputs.layers / group_file.escape_id(bp.id)
        layers_meta: dict[str, dict[str, Any]] = {}
        prev_layers = (prev_bps.get(bp.id) or {}).get("layers") or {}
        names = sorted(p.name[:-5] for p in bp_dir.glob("*.toml") if p.name != "store.toml") \
            if bp_dir.is_dir() else []
        for name in names:
            key = f"{bp.id}:{name}"
            try:
                toml = layer_file.read_layer_toml(bp_dir / f"{name}.toml")
            except LifecycleError:
                bad.append(key)
                continue
            if not toml.launch:
                continue
            layer_dir = bp_dir / name
            layers_meta[name] = {"data": toml.metadata or None, "build": toml.build, "launch": True,
                                 "cache": toml.cache}
            prev_sha = (prev_layers.get(name) or {}).get("sha", "")
            created_by = f"Layer: '{name}', Created by buildpack: {bp}"
            if layer_dir.is_dir():
                reuse = {prev_sha: prev_by_diff[prev_sha]} if prev_sha in prev_by_diff else {}
                plans.append(_dir_plan(inputs, key, created_by, layer_dir, Slot.BUILDPACK, reuse))
                continue
            if toml.cache:
                raise fail(f"layer '{key}' is cache=true but has no contents")
            if not prev_sha:
                raise fail(f"cannot reuse '{key}', previous image has no metadata for layer '{key}'")
            plans.append(LayerPlan(key, f"Layer: '{name}', Created by buildpack: {bp.id}", Slot.BUILDPACK, None,
                                   reuse_diff_id=prev_sha))
        store_toml = bp_dir / "store.toml"
        store = None
        if store_toml.is_file():
            store = {"metadata": (read_toml(store_toml) or {}).get("metadata") or {}}
        labels.append(BuildpackLabel(bp.id, bp.version, layers_meta, store))
    if bad:
        raise fail(f"failed to parse metadata for layers '[{' '.join(bad)}]'")
    return plans, labels


def _app_plans(inputs: PlanInputs, meta: metadata_file.BuildMetadata, prev_label: Mapping[str, Any],
               prev_by_diff: Mapping[str, m.Descriptor]) -> list[LayerPlan]:
    app, uid, gid = inputs.app, inputs.uid, inputs.gid
    image_app = os.path.abspath(app)
    prev_app = {a.get("sha", "") for a in prev_label.get("app") or [] if isinstance(a, dict)}
    reuse = {sha: prev_by_diff[sha] for sha in prev_app if sha in prev_by_diff}
    globs = [list(s.paths) for s in meta.slices]
    taken_by_slice, taken = app_slices.plan_slices(app, globs) if globs else ([], set())
    plans: list[LayerPlan] = []

    def slice_of(rels: set[str]) -> Entries:
        return lambda: app_slices.slice_entries(app, image_app, rels, uid, gid)

    for i, rels in enumerate(taken_by_slice):
        plans.append(LayerPlan(f"app slice {i + 1}", f"Application Slice: {i + 1}", Slot.APP, slice_of(rels), reuse))
    created_by = f"Application Slice: {len(globs) + 1}" if globs else "Application Layer"
    plans.append(LayerPlan("app", created_by, Slot.APP,
                           lambda: app_slices.rest_entries(app, image_app, taken, uid, gid), reuse))
    return plans


def _reuse_one(entry: Any, prev_by_diff: Mapping[str, m.Descriptor]) -> dict[str, m.Descriptor]:
    sha = entry.get("sha", "") if isinstance(entry, dict) else ""
    return {sha: prev_by_diff[sha]} if sha in prev_by_diff else {}


def _launcher_entries(launcher: Path) -> list[Entry]:
    return [Entry("/cnb", "dir", 0o755, 0, 0), Entry("/cnb/lifecycle", "dir", 0o755, 0, 0),
            Entry(LAUNCHER_PATH, "file", 0o755, 0, 0, source=launcher, size=launcher.stat().st_size)]


def _process_entries(types: list[str]) -> list[Entry]:
    out = [Entry("/cnb", "dir", 0o755, 0, 0), Entry(PROCESS_DIR, "dir", 0o755, 0, 0)]
    out += [Entry(f"{PROCESS_DIR}/{t}", "symlink", 0o755, 0, 0, linkname=LAUNCHER_PATH) for t in types]
    return out
