"""The builder: run each group buildpack's ``bin/build`` and collect ``<layers>/config/metadata.toml``.

Follows upstream (``phase/builder.go``, ``buildpack/build.go``): each buildpack gets its own
``<layers>/<id with / as _>`` directory and its share of ``plan.toml``; after it runs, its layer
``.toml`` files are read (all types false -> the layer dir is renamed ``<layer>.ignore``), its
``build = true`` layers extend the environment of later buildpacks, and ``build.toml`` /
``launch.toml`` are read and validated. A failing ``bin/build`` is exit 51, anything else 52.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.api import ApiVersion
from lifecycle.buildpack.api import verify_buildpack_api
from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.files import _toml
from lifecycle.files import buildpack as buildpack_file
from lifecycle.files.analyzed import Analyzed
from lifecycle.files.buildpack import BuildpackToml
from lifecycle.files.group import Group, GroupEntry, escape_id
from lifecycle.files.launch import FORBIDDEN_TYPE_CHARACTERS, ProcessEntry, read_build_toml, read_launch_toml
from lifecycle.files.layer import LayerToml, read_layer_toml
from lifecycle.files.metadata import BuildMetadata, BuildpackRef, Label, Process, Slice
from lifecycle.files.plan import BuildpackPlan, Plan
from lifecycle.phases._buildenv import BuildEnv
from lifecycle.phases._targets import run_target

# Files in <layers>/<bp>/ that are not layer metadata.
NOT_LAYERS = ("launch.toml", "build.toml", "store.toml")

SBOM_TYPES = {"sbom.cdx.json": "application/vnd.cyclonedx+json", "sbom.spdx.json": "application/spdx+json",
              "sbom.syft.json": "application/vnd.syft+json"}


@dataclass(frozen=True)
class BuildInputs:
    """Resolved inputs of the builder."""

    app_dir: Path
    layers_dir: Path
    platform_dir: Path
    buildpacks_dir: Path
    group: Group
    plan: Plan
    platform_api: ApiVersion
    analyzed: Analyzed | None = None
    build_config_dir: Path | None = None
    exec_env: str = "production"
    environ: Mapping[str, str] = field(default_factory=dict)


def _fail(message: str) -> LifecycleError:
    return LifecycleError(f"failed to build: {message}", ExitCode.BUILD_OTHER)


@dataclass(frozen=True)
class _SbomFile:
    buildpack_id: str
    layer: str  # "" for launch.sbom.* / build.sbom.*
    kind: str  # launch, build, cache
    path: Path

    @property
    def name(self) -> str:
        return next(ext for ext in SBOM_TYPES if self.path.name.endswith("." + ext))


@dataclass
class _Outputs:
    labels: list[Label] = field(default_factory=list)
    processes: list[ProcessEntry] = field(default_factory=list)
    slices: list[Slice] = field(default_factory=list)
    met_requires: list[str] = field(default_factory=list)
    sbom: list[_SbomFile] = field(default_factory=list)


class _ProcessMap:
    """Later buildpacks override same-type processes; the last ``default = true`` wins."""

    def __init__(self) -> None:
        self.by_type: dict[str, Process] = {}
        self.default_type = ""

    def add(self, processes: list[ProcessEntry], buildpack_id: str) -> str:
        warning = ""
        for entry in processes:
            if entry.default:
                self.default_type = entry.type
                warning = ""
            elif entry.type == self.default_type:
                self.default_type = ""
                warning = ("redefining the following default process type with a process not marked as "
                           f"default: {entry.type}")
            self.by_type[entry.type] = entry.to_process(buildpack_id)
        return warning

    def sorted(self) -> list[Process]:
        return [self.by_type[t] for t in sorted(self.by_type)]


class _Builder:
    def __init__(self, inputs: BuildInputs, logger: Any) -> None:
        self.inputs = inputs
        self.logger = logger
        self.env = BuildEnv(inputs.environ)
        self.target_env = run_target(inputs.analyzed)[0].env()

    def build_one(self, entry: GroupEntry, descriptor: BuildpackToml, plan: BuildpackPlan) -> _Outputs:
        inputs = self.inputs
        api = ApiVersion.parse(descriptor.api)
        bp_layers = inputs.layers_dir / escape_id(entry.id)
        bp_layers.mkdir(parents=True, exist_ok=True)
        plan_dir = Path(tempfile.mkdtemp(prefix=escape_id(entry.id) + "-"))
        try:
            plan_path = plan_dir / escape_id(entry.id) / "plan.toml"
            plan_path.parent.mkdir(parents=True)
            _toml.write(plan_path, plan.to_toml_dict())
            self.logger.debug("Running build command")
            self._run(descriptor, api, bp_layers, plan_path)
        finally:
            shutil.rmtree(plan_dir, ignore_errors=True)
        self.logger.debug("Processing layers")
        layers = self._process_layers(bp_layers)
        self.logger.debug("Updating environment")
        for layer_path, meta in layers.items():
            if meta.build:
                self.env.add_root_dir(layer_path)
                self.env.add_env_dir(layer_path / "env", "override")
                self.env.add_env_dir(layer_path / "env.build", "override")
        self.logger.debug("Reading output files")
        return self._read_outputs(entry, descriptor, api, bp_layers, plan, layers)

    def _run(self, descriptor: BuildpackToml, api: ApiVersion, bp_layers: Path, plan_path: Path) -> None:
        inputs = self.inputs
        platform = None if descriptor.buildpack.clear_env else inputs.platform_dir
        env = self.env.with_overrides(platform, inputs.build_config_dir)
        env["CNB_BUILDPACK_DIR"] = str(descriptor.dir)
        if api >= ApiVersion(0, 8):
            env.update({"CNB_PLATFORM_DIR": str(inputs.platform_dir), "CNB_BP_PLAN_PATH": str(plan_path),
                        "CNB_LAYERS_DIR": str(bp_layers)})
        if api >= ApiVersion(0, 10):
            env.update(self.target_env)
        if api >= ApiVersion(0, 12) and inputs.exec_env:
            env["CNB_EXEC_ENV"] = inputs.exec_env
        exe = descriptor.dir / "bin" / "build"
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            proc = subprocess.run([str(exe), str(bp_layers), str(inputs.platform_dir), str(plan_path)],
                                  cwd=inputs.app_dir, env=env, stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            raise LifecycleError(f"failed to build: fork/exec {exe}: {exc.strerror or exc}",
                                 ExitCode.BUILD_BUILDPACK) from None
        if proc.returncode < 0:
            raise LifecycleError(f"failed to build: signal: {-proc.returncode}", ExitCode.BUILD_BUILDPACK)
        if proc.returncode != 0:
            raise LifecycleError(f"failed to build: exit status {proc.returncode}", ExitCode.BUILD_BUILDPACK)

    def _process_layers(self, bp_layers: Path) -> dict[Path, LayerToml]:
        layers: dict[Path, LayerToml] = {}
        for name in sorted(os.listdir(bp_layers)):
            path = bp_layers / name
            if not name.endswith(".toml") or name in NOT_LAYERS or path.is_dir():
                continue
            layer_path = bp_layers / name.removesuffix(".toml")
            try:
                meta = read_layer_toml(path)
            except LifecycleError as exc:
                raise _fail(f"failed to process buildpack layer: failed to decode layer metadata file: "
                            f"{exc.message}") from None
            if meta.ignored and layer_path.exists():
                ignored = layer_path.with_name(layer_path.name + ".ignore")
                if ignored.is_dir() and not ignored.is_symlink():
                    shutil.rmtree(ignored)
                elif ignored.exists() or ignored.is_symlink():
                    ignored.unlink()
                layer_path.rename(ignored)
            layers[layer_path] = meta
        return layers

    def _read_outputs(self, entry: GroupEntry, descriptor: BuildpackToml, api: ApiVersion, bp_layers: Path,
                      plan: BuildpackPlan, layers: dict[Path, LayerToml]) -> _Outputs:
        out = _Outputs()
        try:
            build_toml = read_build_toml(bp_layers / "build.toml")
        except LifecycleError as exc:
            raise _fail(exc.message) from None
        wanted = {r.name for r in plan.entries}
        for unmet in build_toml.unmet:
            if not unmet.name:
                raise _fail("unmet.name is required")
            if unmet.name not in wanted:
                raise _fail(f"unmet.name '{unmet.name}' must match a requested dependency")
        unmet_names = {u.name for u in build_toml.unmet}
        out.met_requires = [r.name for r in plan.entries if r.name not in unmet_names]
        out.sbom = self._sbom_files(entry, descriptor, bp_layers, layers)
        try:
            launch = read_launch_toml(bp_layers / "launch.toml", api)
        except LifecycleError as exc:
            raise _fail(exc.message) from None
        if launch is None:
            return out
        validate_processes(launch.processes)
        if api < ApiVersion(0, 8):
            for process in launch.processes:
                if process.working_dir:
                    self.logger.warning("process working directory isn't supported in this buildpack api "
                                        f"version. Ignoring working directory for process '{process.type}'")
                    process.working_dir = ""
        out.labels = list(launch.labels)
        out.processes = list(launch.processes)
        out.slices = list(launch.slices)
        return out

    def _sbom_files(self, entry: GroupEntry, descriptor: BuildpackToml, bp_layers: Path,
                    layers: dict[Path, LayerToml]) -> list[_SbomFile]:
        files: list[_SbomFile] = []
        for path in sorted(bp_layers.glob("*.sbom.*.json")):
            layer = path.name.split(".", 1)[0]
            if layer in ("launch", "build"):
                files.append(_SbomFile(entry.id, "", layer, path))
                continue
            meta = layers.get(bp_layers / layer)
            if meta is None:
                continue
            files.append(_SbomFile(entry.id, layer, "launch" if meta.launch else "build", path))
            if meta.cache:
                files.append(_SbomFile(entry.id, layer, "cache", path))
        declared = {f.split(";")[0].strip() for f in descriptor.buildpack.sbom_formats}
        for sbom in files:
            media = next((m for ext, m in SBOM_TYPES.items() if sbom.path.name.endswith("." + ext)), None)
            if media is None:
                raise _fail(f"unsupported SBOM file format: '{sbom.path}'")
            if media not in declared:
                raise _fail(f"validating SBOM file '{sbom.path}' for buildpack: '{entry}': "
                            f"undeclared SBOM media type: '{media}'")
        return files


def validate_processes(processes: list[ProcessEntry]) -> None:
    """Non-empty types without ``/><:|&\\``, at most one ``default = true`` (exit 52)."""
    default = ""
    for process in processes:
        if not process.type:
            raise _fail("type is required for all processes")
        if any(c in process.type for c in FORBIDDEN_TYPE_CHARACTERS):
            raise _fail(f"invalid process type '{process.type}': type may not contain characters "
                        f"'{FORBIDDEN_TYPE_CHARACTERS}'")
        if process.default:
            if default:
                raise _fail("multiple default process types aren't allowed")
            default = process.type


def _copy_sbom(layers_dir: Path, files: list[_SbomFile]) -> None:
    for sbom in files:
        target = layers_dir / "sbom" / sbom.kind / escape_id(sbom.buildpack_id)
        if sbom.layer:
            target = target / sbom.layer
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sbom.path, target / sbom.name)


def build(inputs: BuildInputs, logger: Any) -> BuildMetadata:
    """Run every buildpack of the group; return what ``metadata.toml`` records."""
    for entry in inputs.group.group:
        if entry.api:
            verify_buildpack_api(str(entry), entry.api)
    sbom_dir = inputs.layers_dir / "sbom"
    if sbom_dir.exists():
        shutil.rmtree(sbom_dir)
    builder = _Builder(inputs, logger)
    processes = _ProcessMap()
    labels: list[Label] = []
    slices: list[Slice] = []
    sboms: list[_SbomFile] = []
    refs: list[BuildpackRef] = []
    remaining = inputs.plan
    for entry in inputs.group.group:
        logger.debug(f"Running build for buildpack {entry}")
        logger.debug("Looking up buildpack")
        try:
            descriptor = buildpack_file.lookup(inputs.buildpacks_dir, entry.id, entry.version)
        except LifecycleError as exc:
            raise _fail(exc.message) from None
        if not entry.api:
            verify_buildpack_api(str(entry), descriptor.api)
        logger.debug("Finding plan")
        bp_plan = remaining.find(entry.id)
        outputs = builder.build_one(entry, descriptor, bp_plan)
        remaining = remaining.without(outputs.met_requires)
        labels.extend(outputs.labels)
        slices.extend(outputs.slices)
        sboms.extend(outputs.sbom)
        logger.debug("Updating process list")
        warning = processes.add(outputs.processes, entry.id)
        if warning:
            logger.warning(warning)
        refs.append(BuildpackRef(id=entry.id, version=entry.version, api=entry.api or descriptor.api,
                                 homepage=entry.homepage))
        logger.debug(f"Finished running build for buildpack {entry}")
    logger.debug("Copying SBOM files")
    try:
        _copy_sbom(inputs.layers_dir, sboms)
    except OSError as exc:
        raise _fail(f"copying SBOM files: {exc}") from None
    logger.debug("Listing processes")
    return BuildMetadata(buildpacks=refs, labels=labels, processes=processes.sorted(), slices=slices,
                         buildpack_default_process_type=processes.default_type)


def build_and_record(inputs: BuildInputs, logger: Any) -> None:
    """:func:`build`, then ``<layers>/config/metadata.toml``; an I/O failure is exit 51 (e.g. a
    buildpack left a tree the CNB user may not read, spec/trust-model.md)."""
    from lifecycle.files import metadata as metadata_file

    try:
        metadata = build(inputs, logger)
        metadata_file.write(inputs.layers_dir / "config" / "metadata.toml", metadata)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise LifecycleError(f"failed to build: {exc.strerror or exc}{where}", ExitCode.BUILD_OTHER) from None
