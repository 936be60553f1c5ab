"""The exporter: assemble the app image and save it as an OCI layout (decision D5).

Layer order (upstream-lifecycle.md §8.1): run image layers; each buildpack's launch layers (group
order, then layer name); the SBOM layer; app slices then the rest of the app; the launcher;
``<layers>/config``; ``/cnb/process/<type>`` links. New layers are built in parallel threads and
streamed into blobs; run-image and reused blobs are hard-linked. ``index.json`` is replaced last,
atomically, so a failed or killed export leaves the target layout as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.errors import ExitCode, ImageError, InputError, LifecycleError
from lifecycle.files import group as group_file
from lifecycle.files import layer as layer_file
from lifecycle.files import metadata as metadata_file
from lifecycle.files._toml import read as read_toml
from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.image.parts import layer_descriptors, link_blob, oci_layer, ref_name
from lifecycle.image.store import LayoutStore, StoredImage
from lifecycle.launch.table import render_table, write_table
from lifecycle.layers import slices as app_slices
from lifecycle.layers.blob import Layer, build_layer, diff_id_of
from lifecycle.layers.tar import Entry, dir_entries, parent_entries
from lifecycle.phases import export_config as cfg
from lifecycle.phases.analyzer import run_image_missing
from lifecycle.phases.daemon_export import Layer as DaemonLayer
from lifecycle.phases.daemon_export import fill, known_chains, needing_bytes, update_launch_cache
from lifecycle.phases.export_config import LAUNCHER_PATH, LIFECYCLE_LABEL, PROCESS_DIR

DEFAULT_CREATED = "1980-01-01T00:00:01Z"
BAD_TYPE_CHARS = set("/><:|&\\")

Entries = Callable[[], Iterable[Entry]]
STAGING_TAG = "export"

if TYPE_CHECKING:
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.registry import RegistryStore

    Store = LayoutStore | RegistryStore | DaemonStore


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


@dataclass
class ExportResult:
    """What was saved: for report.toml and the caller's logs."""

    digest: str
    manifest_size: int
    paths: list[str]  # layout paths, or the references pushed / loaded
    reused: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    image_id: str = ""  # daemon mode


@dataclass
class _Planned:
    """One new layer of the app image, before it is built."""

    key: str
    created_by: str
    entries: Entries
    reuse: dict[str, m.Descriptor]  # diffID -> previous image blob this layer may reuse
    label: str = ""  # the lifecycle label slot ("app", "config", ...) or "bp"
    bp_index: int = -1
    name: str = ""


@dataclass
class _Built:
    planned: _Planned
    diff_id: str
    descriptor: m.Descriptor
    reused: bool
    seconds: float


def export(inputs: ExportInputs, store: Store, logger: Any) -> ExportResult:
    """Build and save the app image; returns its digest and where it was saved.

    OCI layouts are written in place. For a registry or a daemon the image is assembled in a
    staging layout under ``<layers>`` (sparse: base and reused layers stay remote), then pushed
    (blobs the registry has are skipped or cross-mounted) or loaded.
    """
    try:
        return _Exporter(inputs, store, logger).run()
    except ImageError as exc:
        raise LifecycleError(f"failed to export: {exc}", ExitCode.EXPORT) from None
    except OSError as exc:
        raise LifecycleError(f"failed to export: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                             ExitCode.EXPORT) from None


def _fail(message: str) -> LifecycleError:
    return LifecycleError(f"failed to export: {message}", ExitCode.EXPORT)


class _Exporter:
    def __init__(self, inputs: ExportInputs, store: Store, logger: Any) -> None:
        self.inputs = inputs
        self.store = store
        self.log = logger
        self._daemon_layers: list[DaemonLayer] = []

    # ---- inputs ---------------------------------------------------------------------------
    def _run_image(self) -> StoredImage:
        image = self.store.find(self.inputs.run_image)
        if image is None:
            raise InputError(run_image_missing(self.store, self.inputs.run_image))
        return image

    def _previous(self) -> tuple[StoredImage | None, dict[str, Any]]:
        if not self.inputs.previous_image:
            return None, {}
        try:
            image = self.store.find(self.inputs.previous_image)
        except ImageError as exc:
            self.log.warning(f"Ignoring previous image {self.inputs.previous_image}: {exc}")
            return None, {}
        if image is None:
            return None, {}
        try:
            label = json.loads(image.config.labels.get(LIFECYCLE_LABEL) or "{}")
        except ValueError:
            label = {}
        return image, label if isinstance(label, dict) else {}

    def _metadata(self) -> metadata_file.BuildMetadata:
        path = self.inputs.layers / "config" / "metadata.toml"
        if not path.exists():
            return metadata_file.BuildMetadata()
        try:
            meta = metadata_file.read(path)
        except LifecycleError as exc:
            raise _fail(str(exc)) from None
        for proc in meta.processes:
            if not proc.type:
                raise _fail("type is required for all processes")
            if BAD_TYPE_CHARS & set(proc.type):
                raise _fail(f"invalid process type '{proc.type}': type may not contain characters '/><:|&\\'")
        return meta

    # ---- plan -----------------------------------------------------------------------------
    def run(self) -> ExportResult:
        inputs = self.inputs
        run_image = self._run_image()
        previous, prev_label = self._previous()
        if previous is not None:
            self.log.info(f"Reusing layers from image '{previous.path}'")
        meta = self._metadata()
        entrypoint = self._entrypoint(meta)
        config_dir = inputs.layers / "config"
        try:
            render_table(meta)
        except ValueError as exc:
            raise _fail(f"invalid process metadata: {exc}") from None
        bad_links = app_slices.outside_symlinks(inputs.app) if inputs.app.is_dir() else []
        if bad_links:
            link, target = bad_links[0]
            raise _fail(f"app directory contains a symlink pointing outside it: {link} -> {target}")
        if not inputs.app.is_dir():
            raise InputError(f"failed to export: app directory {inputs.app} does not exist")
        prev_by_diff = _descriptors_by_diff(previous)
        bp_plans, bp_labels, reuse_only = self._buildpack_layers(prev_label, prev_by_diff)
        plans = [*bp_plans]
        sbom = inputs.layers / "sbom" / "launch"
        if sbom.is_dir():
            plans.append(self._dir_plan("buildpacksio/lifecycle:launch.sbom", "Software Bill-of-Materials",
                                        sbom, _reuse_one(prev_label.get("sbom"), prev_by_diff), "sbom"))
        plans.extend(self._app_plans(meta, prev_label, prev_by_diff))
        launcher = inputs.launcher
        if not launcher.is_file():
            raise InputError(f"failed to export: launcher {launcher} not found")
        plans.append(_Planned("buildpacksio/lifecycle:launcher", "Buildpacks Application Launcher",
                              lambda: _launcher_entries(launcher),
                              _reuse_one(prev_label.get("launcher"), prev_by_diff), "launcher"))
        config_dir.mkdir(parents=True, exist_ok=True)
        write_table(config_dir, meta)
        plans.append(self._dir_plan("buildpacksio/lifecycle:config", "Buildpacks Launcher Config", config_dir,
                                    _reuse_one(prev_label.get("config"), prev_by_diff), "config"))
        types = sorted(p.type for p in meta.processes)
        if types:
            plans.append(_Planned("buildpacksio/lifecycle:process-types", "Buildpacks Process Types",
                                  lambda: _process_entries(types),
                                  _reuse_one(prev_label.get("process-types"), prev_by_diff), "process-types"))

        staging = None
        if isinstance(self.store, LayoutStore):
            out = Layout(self.store.output_path(inputs.output_image))
        else:
            staging = Path(tempfile.mkdtemp(prefix=".export-", dir=inputs.layers))
            out = Layout(staging)
        try:
            out.init()
            built = self._build_all(plans, out, previous)
            reused_bp = [self._reuse_only_layer(key, diff, prev_by_diff, previous, out)
                         for key, diff in reuse_only]
            return self._save(run_image, previous, out, meta, entrypoint, built, reused_bp, bp_labels)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def _entrypoint(self, meta: metadata_file.BuildMetadata) -> str:
        wanted = self.inputs.process_type
        if wanted:
            if meta.process(wanted) is None:
                raise _fail(f"determining entrypoint: tried to set {wanted} to default but it doesn't exist")
            return wanted
        default = meta.buildpack_default_process_type
        if default and meta.process(default) is not None:
            return default
        return ""

    def _dir_plan(self, key: str, created_by: str, src: Path, reuse: dict[str, m.Descriptor],
                  label: str, bp_index: int = -1, name: str = "") -> _Planned:
        uid, gid = self.inputs.uid, self.inputs.gid

        def entries() -> Iterable[Entry]:
            image_path = os.path.abspath(src)
            return [*parent_entries(image_path, src), *dir_entries(src, image_path, uid, gid)]

        return _Planned(key, created_by, entries, reuse, label, bp_index, name)

    def _buildpack_layers(self, prev_label: dict[str, Any], prev_by_diff: dict[str, m.Descriptor]
                          ) -> tuple[list[_Planned], list[dict[str, Any]], list[tuple[str, str]]]:
        inputs = self.inputs
        if inputs.group.exists():
            group = group_file.read(inputs.group).group
        else:
            self.log.warning(f'No group file found at path "{inputs.group}"; exporting without buildpack layers')
            group = []
        prev_bps = {bp.get("key"): bp for bp in prev_label.get("buildpacks") or [] if isinstance(bp, dict)}
        plans: list[_Planned] = []
        labels: list[dict[str, Any]] = []
        reuse_only: list[tuple[str, str]] = []
        bad: list[str] = []
        for index, bp in enumerate(group):
            bp_dir = inputs.layers / group_file.escape_id(bp.id)
            layers_meta: dict[str, Any] = {}
            entry: dict[str, Any] = {"key": bp.id, "version": bp.version, "layers": layers_meta}
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
                layers_meta[name] = {"sha": "", "data": toml.metadata or None, "build": toml.build,
                                     "launch": True, "cache": toml.cache}
                if layer_dir.is_dir():
                    prev_sha = (prev_layers.get(name) or {}).get("sha", "")
                    reuse = {prev_sha: prev_by_diff[prev_sha]} if prev_sha in prev_by_diff else {}
                    plans.append(self._dir_plan(key, f"Layer: '{name}', Created by buildpack: {bp}", layer_dir,
                                                reuse, "bp", index, name))
                    continue
                if toml.cache:
                    raise _fail(f"layer '{key}' is cache=true but has no contents")
                prev_sha = (prev_layers.get(name) or {}).get("sha", "")
                if not prev_sha:
                    raise _fail(f"cannot reuse '{key}', previous image has no metadata for layer '{key}'")
                layers_meta[name]["sha"] = prev_sha
                reuse_only.append((key, prev_sha))
            store_toml = bp_dir / "store.toml"
            if store_toml.is_file():
                store_data = read_toml(store_toml) or {}
                entry["store"] = {"metadata": store_data.get("metadata") or {}}
            labels.append(entry)
        if bad:
            raise _fail(f"failed to parse metadata for layers '[{' '.join(bad)}]'")
        return plans, labels, reuse_only

    def _app_plans(self, meta: metadata_file.BuildMetadata, prev_label: dict[str, Any],
                   prev_by_diff: dict[str, m.Descriptor]) -> list[_Planned]:
        app, uid, gid = self.inputs.app, self.inputs.uid, self.inputs.gid
        image_app = os.path.abspath(app)
        prev_app = {a.get("sha", "") for a in prev_label.get("app") or [] if isinstance(a, dict)}
        reuse = {sha: prev_by_diff[sha] for sha in prev_app if sha in prev_by_diff}
        globs = [list(s.paths) for s in meta.slices]
        taken_by_slice, taken = app_slices.plan_slices(app, globs) if globs else ([], set())
        plans: list[_Planned] = []
        def slice_of(rels: set[str]) -> Entries:
            return lambda: app_slices.slice_entries(app, image_app, rels, uid, gid)

        for i, rels in enumerate(taken_by_slice):
            plans.append(_Planned(f"app slice {i + 1}", f"Application Slice: {i + 1}", slice_of(rels),
                                  reuse, "app"))
        created_by = f"Application Slice: {len(globs) + 1}" if globs else "Application Layer"
        plans.append(_Planned("app", created_by,
                              lambda: app_slices.rest_entries(app, image_app, taken, uid, gid), reuse, "app"))
        return plans

    # ---- build ----------------------------------------------------------------------------
    def _build_one(self, plan: _Planned, out: Layout, previous: StoredImage | None) -> _Built:
        if plan.reuse and previous is not None:
            diff_id = diff_id_of(plan.entries())
            desc = plan.reuse.get(diff_id)
            if desc is not None:
                link_blob(previous, desc, out)
                return _Built(plan, diff_id, oci_layer(desc), True, 0.0)
        layer: Layer = build_layer(plan.entries(), out)
        return _Built(plan, layer.diff_id, layer.descriptor, False, layer.seconds)

    def _build_all(self, plans: list[_Planned], out: Layout, previous: StoredImage | None) -> list[_Built]:
        with ThreadPoolExecutor(max_workers=max(1, self.inputs.workers)) as pool:
            futures: list[Future[_Built]] = [pool.submit(self._build_one, p, out, previous) for p in plans]
            results: list[_Built] = []
            app_total = sum(1 for p in plans if p.label == "app")
            app_seen = app_reused = 0
            for future in futures:
                built = future.result()  # in plan order, so the log reads in layer order
                results.append(built)
                if built.planned.label != "app":
                    self._log_layer(built)
                    continue
                app_seen += 1
                app_reused += built.reused
                if app_seen == app_total:
                    if app_reused:
                        self.log.info(f"Reused {app_reused}/{app_total} app layer(s)")
                    if app_total - app_reused:
                        self.log.info(f"Added {app_total - app_reused}/{app_total} app layer(s)")
        return results

    def _log_layer(self, built: _Built) -> None:
        key = built.planned.key
        if built.reused:
            self.log.info(f"Reusing layer '{key}'")
        else:
            size = _human(built.descriptor.size)
            self.log.info(f"Adding layer '{key}' ({size}, {built.seconds:.2f}s)")

    def _reuse_only_layer(self, key: str, diff_id: str, prev_by_diff: dict[str, m.Descriptor],
                          previous: StoredImage | None, out: Layout) -> tuple[str, str, m.Descriptor]:
        desc = prev_by_diff.get(diff_id)
        if desc is None or previous is None:
            raise _fail(f"cannot reuse '{key}', previous image has no layer with diffID {diff_id}")
        link_blob(previous, desc, out)
        self.log.info(f"Reusing layer '{key}'")
        return key, diff_id, oci_layer(desc)

    # ---- save -----------------------------------------------------------------------------
    def _save(self, run_image: StoredImage, previous: StoredImage | None, out: Layout,
              meta: metadata_file.BuildMetadata,
              entrypoint: str, built: list[_Built], reused_bp: list[tuple[str, str, m.Descriptor]],
              bp_labels: list[dict[str, Any]]) -> ExportResult:
        inputs = self.inputs
        run_layers = layer_descriptors(run_image)
        for desc in run_layers:
            link_blob(run_image, desc, out)  # sparse or remote: stays missing
        # Buildpack layers keep group order with reuse-only layers in name order among them.
        bp_built = [b for b in built if b.planned.label == "bp"]
        ordered_bp: list[tuple[str, str, m.Descriptor, str]] = []
        for b in bp_built:
            ordered_bp.append((b.planned.key, b.diff_id, b.descriptor, b.planned.created_by))
        for key, diff, desc in reused_bp:
            bp_id, name = key.rsplit(":", 1)
            ordered_bp.append((key, diff, desc, f"Layer: '{name}', Created by buildpack: {bp_id}"))
        group_order = {entry["key"]: i for i, entry in enumerate(bp_labels)}
        ordered_bp.sort(key=lambda t: (group_order.get(t[0].rsplit(":", 1)[0], 0), t[0].rsplit(":", 1)[1]))
        for key, diff, _desc, _h in ordered_bp:
            bp_id, name = key.rsplit(":", 1)
            for entry in bp_labels:
                if entry["key"] == bp_id and name in entry["layers"]:
                    entry["layers"][name]["sha"] = diff
        others = [b for b in built if b.planned.label != "bp"]
        layer_rows = [(diff, desc, hist) for _k, diff, desc, hist in ordered_bp]
        layer_rows += [(b.diff_id, b.descriptor, b.planned.created_by) for b in others]
        rebuild = {b.planned.key: b.planned.entries for b in built}
        self._daemon_layers = [
            *(DaemonLayer(diff, d.digest, "run image layer") for diff, d in zip(run_image.diff_ids, run_layers,
                                                                                  strict=True)),
            *(DaemonLayer(diff, desc.digest, key, rebuild.get(key)) for key, diff, desc, _h in ordered_bp),
            *(DaemonLayer(b.diff_id, b.descriptor.digest, b.planned.key, b.planned.entries) for b in others)]
        created = inputs.created
        config = self._config(run_image, meta, entrypoint, layer_rows, others, bp_labels, created)
        config_bytes = m.canonical_json(config)
        config_desc = out.put_blob(config_bytes, m.OCI_CONFIG)
        tag = ref_name(inputs.output_image)
        manifest = {
            "schemaVersion": 2,
            "mediaType": m.OCI_MANIFEST,
            "config": config_desc.dump(),
            "layers": [oci_layer(d).dump() for d in run_layers] + [d.dump() for _, d, _ in layer_rows],
            "annotations": {m.REF_NAME: tag},
        }
        manifest_bytes = m.canonical_json(manifest)
        manifest_desc = out.put_blob(manifest_bytes, m.OCI_MANIFEST)
        reused = [b.planned.key for b in built if b.reused] + [k for k, _, _ in reused_bp]
        added = [b.planned.key for b in built if not b.reused]
        if not isinstance(self.store, LayoutStore):
            out.set_tag(manifest_desc, STAGING_TAG)
            names, image_id = self._publish(out, run_image, previous)
            self.log.info(f"*** Images ({image_id or manifest_desc.digest}):")
            for name in names:
                self.log.info(f"      {name}")
            if image_id:
                self.log.info(f"*** Image ID: {image_id}")
            else:
                self.log.info(f"*** Digest: {manifest_desc.digest}")
            self.log.info(f"*** Manifest Size: {manifest_desc.size}")
            return ExportResult(manifest_desc.digest, manifest_desc.size, names, reused, added, image_id)
        self.log.info(f"Saving {out.path}...")
        out.set_tag(manifest_desc, tag)
        paths = [str(out.path)]
        for extra in inputs.tags:
            path = self.store.output_path(extra)
            copy = Layout(path)
            copy.init()
            for desc in [*run_layers, *(d for _, d, _ in layer_rows)]:
                copy.add_blob_from(out.blob_path(desc.digest), desc)
            copy.add_blob_from(out.blob_path(config_desc.digest), config_desc)
            copy.add_blob_from(out.blob_path(manifest_desc.digest), manifest_desc)
            self.log.info(f"Saving {path}...")
            copy.set_tag(manifest_desc, ref_name(extra))
            paths.append(str(path))
        self.log.info(f"*** Images ({manifest_desc.digest}):")
        for saved in paths:
            self.log.info(f"      {saved}")
        self.log.info(f"*** Manifest Size: {manifest_desc.size}")
        return ExportResult(manifest_desc.digest, manifest_desc.size, paths, reused, added)

    def _publish(self, staging: Layout, run_image: StoredImage, previous: StoredImage | None
                 ) -> tuple[list[str], str]:
        """Push (registry) or load (daemon) the staged image under the output name and each tag."""
        from lifecycle.image.daemon import DaemonStore

        names = [self.inputs.output_image, *self.inputs.tags]
        image_id = ""
        if isinstance(self.store, DaemonStore):
            self._daemon_bytes(staging, run_image, previous)
        for name in names:
            self.log.info(f"Saving {name}...")
            if isinstance(self.store, DaemonStore):
                image_id = self.store.load_layout_image(staging.path, STAGING_TAG, name)
            else:
                assert not isinstance(self.store, LayoutStore)
                sources = [str(img.path) for img in (run_image, previous) if img is not None]
                self.store.push_layout_image(staging.path, STAGING_TAG, name, mount_from=sources)
        if isinstance(self.store, DaemonStore) and self.inputs.launch_cache is not None:
            above_run = self._daemon_layers[len(run_image.diff_ids):]
            update_launch_cache(self.inputs.launch_cache, above_run, staging, self.log)
        return names, image_id

    def _daemon_bytes(self, staging: Layout, run_image: StoredImage, previous: StoredImage | None) -> None:
        """Put into the staging layout the bytes of every layer whose chain the daemon lacks
        (``daemon_export``): from the launch cache, the previous image, or the layers directory."""
        known = known_chains([run_image, previous])
        needed = needing_bytes(self._daemon_layers, staging, known)
        filled = fill(staging, needed, launch_cache=self.inputs.launch_cache, store=self.store,
                      previous=previous, scratch_parent=self.inputs.layers)
        for item in filled:
            self.log.debug(f"Layer '{item.key}' ({item.diff_id}) is new to the daemon below reused layers: "
                           f"its bytes come from the {item.source}")

    def _config(self, run_image: StoredImage, meta: metadata_file.BuildMetadata, entrypoint: str,
                layer_rows: list[tuple[str, m.Descriptor, str]], others: list[_Built],
                bp_labels: list[dict[str, Any]], created: str) -> dict[str, Any]:
        from lifecycle import __version__

        inputs = self.inputs
        slots = {b.planned.label: b.diff_id for b in others if b.planned.label != "app"}
        app = [b.diff_id for b in others if b.planned.label == "app"]
        run_entry = cfg.run_toml_entry(inputs.run, inputs.run_image, run_image)
        labels = {
            cfg.LIFECYCLE_LABEL: cfg.compact_json(cfg.lifecycle_label(run_image, app=app, slots=slots,
                                                                       buildpacks=bp_labels, run_entry=run_entry)),
            cfg.BUILD_LABEL: cfg.compact_json(cfg.build_label(meta, __version__)),
            cfg.PROJECT_LABEL: cfg.compact_json(read_toml(inputs.project_metadata, missing_ok=True) or {}),
        }
        if inputs.exec_env:
            labels[cfg.EXEC_ENV_LABEL] = inputs.exec_env
        labels.update({label.key: label.value for label in meta.labels})
        env = {"CNB_LAYERS_DIR": os.path.abspath(inputs.layers), "CNB_APP_DIR": os.path.abspath(inputs.app),
               "CNB_PLATFORM_API": inputs.platform_api, "CNB_DEPRECATION_MODE": "quiet"}
        if entrypoint:
            self.log.info(f"Setting default process type '{entrypoint}'")
        else:
            self.log.info("no default process type")
        for key in (cfg.LIFECYCLE_LABEL, cfg.BUILD_LABEL, cfg.PROJECT_LABEL):
            self.log.info(f"Adding label '{key}'")
        return cfg.image_config(run_image, new_layers=[(d, h) for d, _, h in layer_rows], entrypoint=entrypoint,
                                env=env, working_dir=os.path.abspath(inputs.app), created=created, labels=labels)


def _descriptors_by_diff(image: StoredImage | None) -> dict[str, m.Descriptor]:
    if image is None:
        return {}
    return dict(zip(image.diff_ids, layer_descriptors(image), strict=True))


def _reuse_one(entry: Any, prev_by_diff: dict[str, m.Descriptor]) -> dict[str, m.Descriptor]:
    sha = entry.get("sha", "") if isinstance(entry, dict) else ""
    return {sha: prev_by_diff[sha]} if sha in prev_by_diff else {}


def _launcher_entries(launcher: Path) -> list[Entry]:
    return [Entry("/cnb", "dir", 0o755, 0, 0), Entry("/cnb/lifecycle", "dir", 0o755, 0, 0),
            Entry(LAUNCHER_PATH, "file", 0o755, 0, 0, source=launcher, size=launcher.stat().st_size)]


def _process_entries(types: list[str]) -> list[Entry]:
    out = [Entry("/cnb", "dir", 0o755, 0, 0), Entry(PROCESS_DIR, "dir", 0o755, 0, 0)]
    out += [Entry(f"{PROCESS_DIR}/{t}", "symlink", 0o777, 0, 0, linkname=LAUNCHER_PATH) for t in types]
    return out


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
