"""Input resolution shared by the phases that touch images (analyzer, exporter, creator)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle.cli._command import Context
from lifecycle.errors import InputError, LifecycleError
from lifecycle.files import run as run_toml
from lifecycle.image import ref as refs
from lifecycle.image.store import LayoutStore, open_store

if TYPE_CHECKING:
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.registry import RegistryStore
    from lifecycle.phases.exporter import ExportInputs
    from lifecycle.phases.save import ExportResult


def store_for(ctx: Context) -> LayoutStore | RegistryStore | DaemonStore:
    """The image store the flags ask for: ``-oci`` layouts, ``-daemon`` the Docker daemon, else
    registries (``-insecure-registry`` ones over plain HTTP; ``CNB_REGISTRY_AUTH``, Docker config)."""
    s = ctx.settings
    return open_store(oci=bool(s["oci"]), daemon=bool(s["daemon"]), oci_dir=str(s["oci-dir"]),
                      insecure_registries=tuple(s["insecure-registry"] or ()), environ=s.environ,
                      keychain=ctx.keychain, registry_timeout=int(s["registry-timeout"]),
                      registry_deadline=int(s["registry-deadline"]))


def registry_store_for(ctx: Context) -> RegistryStore:
    """A registry store with the phase's ``-insecure-registry`` list and credentials, whatever the mode
    (a registry cache image next to layouts or the daemon)."""
    from lifecycle.image.store import registry_store

    s = ctx.settings
    return registry_store(tuple(s["insecure-registry"] or ()), s.environ, ctx.keychain,
                          registry_timeout=int(s["registry-timeout"]), registry_deadline=int(s["registry-deadline"]))


def run_image(ctx: Context, store: LayoutStore | RegistryStore | DaemonStore, output: str, *, oci: bool) -> str:
    """``-run-image``, else ``CNB_RUN_IMAGE``, else the best accessible image of run.toml's first
    ``[[images]]`` entry and its ``mirrors`` (upstream's rule; none accessible: exit 3)."""
    from lifecycle.image.access import select_run_image

    value = str(ctx.settings["run-image"] or "")
    if value:
        return value
    images = run_toml.read_images(ctx.settings["run"])
    if images:
        return select_run_image(images[0], output, store)
    if oci:
        raise InputError("-run-image is required when OCI feature is enabled")
    raise InputError("-run-image is required when there is no run metadata available")


def check_refs(*references: str, allow_paths: bool = True) -> None:
    """Every image reference must parse (exit 3), as upstream validates up front."""
    for text in references:
        if not text or (allow_paths and text.startswith("/")):
            continue
        try:
            refs.parse(text)
        except refs.ReferenceError as exc:
            raise InputError(f"failed to parse arguments: {exc}") from None


def check_same_registry(output: str, tags: tuple[str, ...], *, oci: bool = False) -> None:
    """Output and ``-tag`` images must share a registry (upstream's rule for registries; layouts are
    directories, so in OCI mode each tag simply gets its own)."""
    if oci or not tags or output.startswith("/"):
        return
    registry = refs.parse(output).registry
    for tag in tags:
        if not tag.startswith("/") and refs.parse(tag).registry != registry:
            raise InputError("writing to multiple registries is unsupported")


def launcher_path(ctx: Context) -> Path:
    """``-launcher``, else ``/cnb/lifecycle/launcher`` where it exists, else the one ``make launcher``
    built in this checkout (``build/launcher/launcher``)."""
    given = str(ctx.settings["launcher"] or "")
    if given:
        return Path(given)
    installed = Path("/cnb/lifecycle/launcher")
    if installed.is_file():
        return installed
    return Path(__file__).resolve().parents[2] / "build" / "launcher" / "launcher"


def created_time(ctx: Context) -> str:
    """``SOURCE_DATE_EPOCH`` as RFC 3339, else upstream's fixed 1980-01-01T00:00:01Z."""
    raw = str(ctx.settings["source-date-epoch"] or "")
    if raw:
        try:
            when = datetime.fromtimestamp(int(raw), tz=UTC)
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, OverflowError, OSError):
            ctx.logger.warning("Ignoring invalid SOURCE_DATE_EPOCH")
    return "1980-01-01T00:00:01Z"


def export_inputs(ctx: Context, store: LayoutStore | RegistryStore | DaemonStore, *, output: str,
                  tags: tuple[str, ...], run_image_ref: str = "", previous: str | None = None) -> ExportInputs:
    """The exporter's inputs: run image per D11 (flag wins over analyzed.toml, with a warning)."""
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.phases.exporter import ExportInputs

    s = ctx.settings
    check_refs(output, *tags)
    check_same_registry(output, tags, oci=bool(s["oci"]))
    try:
        analyzed = analyzed_file.read(s["analyzed"])
    except (ValueError, LifecycleError) as exc:
        raise InputError(f"failed to read analyzed metadata {s['analyzed']}: {str(exc).splitlines()[0]}") from None
    if analyzed is None:
        ctx.logger.warning(f'No analyzed metadata found at path "{s["analyzed"]}"')
    recorded = analyzed.run_image.reference if analyzed and analyzed.run_image else ""
    flag = run_image_ref or str(s["run-image"] or "")
    if flag:
        check_refs(flag)
        if recorded and _names_differ(store, flag, recorded):
            ctx.logger.warning(f"-run-image {flag} differs from the run image in analyzed.toml "
                               f"({recorded}); using {flag}")
        run_ref = flag
    elif recorded:
        run_ref = recorded
    else:
        raise InputError("run image not found in analyzed metadata")
    if previous is None:
        previous = analyzed.previous_image.reference if analyzed and analyzed.previous_image else ""
    return ExportInputs(
        output_image=output, tags=tags, run_image=run_ref, previous_image=previous,
        app=Path(s["app"]), layers=Path(s["layers"]), group=Path(s["group"]), launcher=launcher_path(ctx),
        process_type=str(s["process-type"] or ""), project_metadata=Path(s["project-metadata"]),
        run=Path(s["run"]), uid=int(s["uid"]), gid=int(s["gid"]), platform_api=str(ctx.api),
        exec_env=str(s["exec-env"] or ""), created=created_time(ctx),
        launch_cache=Path(s["launch-cache"]) if s["launch-cache"] and s["daemon"] else None)


def _names_differ(store: LayoutStore | RegistryStore | DaemonStore, flag: str, recorded: str) -> bool:
    """Whether ``-run-image`` names another image than analyzed.toml's ``<name>@<digest>``."""
    same = store.names_image(flag, recorded, first_found=True)
    if same is not None:
        return not same
    try:
        return refs.parse(flag).name != refs.parse(recorded).name
    except refs.ReferenceError:
        return flag != recorded


def write_report(ctx: Context, result: ExportResult) -> None:
    """report.toml: what was saved, with the manifest digest and size (D5), or the image ID."""
    from lifecycle.files import report

    report.write(Path(ctx.settings["report"]), tags=result.paths, digest="" if result.image_id else result.digest,
                 manifest_size=result.manifest_size, image_id=result.image_id)
