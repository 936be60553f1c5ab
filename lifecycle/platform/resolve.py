"""Platform input resolution: resolved settings -> the typed, frozen inputs of each phase.

What the platform says, in one place (upstream's ``platform/resolve_inputs.go``): D11's run-image
precedence (``-run-image`` > ``CNB_RUN_IMAGE`` > ``run.toml``, and the flag over ``analyzed.toml``
with a warning), where the launcher is, ``SOURCE_DATE_EPOCH`` as the image's created time, which
image store the mode flags pick, and the up-front reference checks. Phases get the frozen inputs
this module returns and never read settings, env or argv themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.errors import InputError, LifecycleError
from lifecycle.files import run as run_toml
from lifecycle.image import ref as refs
from lifecycle.image.store import ImageStore, open_store
from lifecycle.platform.settings import Settings

if TYPE_CHECKING:
    from lifecycle.image.auth import Keychain
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.registry import RegistryStore
    from lifecycle.image.store import LayoutStore
    from lifecycle.phases.analyzer import AnalyzeInputs
    from lifecycle.phases.exporter import ExportInputs
    from lifecycle.phases.rebaser import RebaseInputs

DEFAULT_CREATED = "1980-01-01T00:00:01Z"  # upstream's fixed created time without SOURCE_DATE_EPOCH
INSTALLED_LAUNCHER = Path("/cnb/lifecycle/launcher")


def image_store(settings: Settings, keychain: Keychain | None = None) -> LayoutStore | RegistryStore | DaemonStore:
    """The image store the flags ask for: ``-oci`` layouts, ``-daemon`` the Docker daemon, else
    registries (``-insecure-registry`` ones over plain HTTP; credentials from ``keychain``, else
    ``CNB_REGISTRY_AUTH`` and the Docker config; ``CNB_REGISTRY_TIMEOUT``/``CNB_REGISTRY_DEADLINE``)."""
    return open_store(oci=bool(settings["oci"]), daemon=bool(settings["daemon"]), oci_dir=str(settings["oci-dir"]),
                      insecure_registries=tuple(settings["insecure-registry"] or ()), environ=settings.environ,
                      keychain=keychain, registry_timeout=int(settings["registry-timeout"]),
                      registry_deadline=int(settings["registry-deadline"]))


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


def run_image(settings: Settings, store: ImageStore, output: str) -> str:
    """``-run-image``, else ``CNB_RUN_IMAGE``, else the best accessible image of run.toml's first
    ``[[images]]`` entry and its ``mirrors`` (upstream's rule; none accessible: exit 3)."""
    from lifecycle.image.access import select_run_image

    value = str(settings["run-image"] or "")
    if value:
        return value
    images = run_toml.read_images(settings["run"])
    if images:
        return select_run_image(images[0], output, store)  # type: ignore[arg-type]
    if settings["oci"]:
        raise InputError("-run-image is required when OCI feature is enabled")
    raise InputError("-run-image is required when there is no run metadata available")


def launcher_path(settings: Settings) -> Path:
    """``-launcher``, else ``/cnb/lifecycle/launcher`` where it exists, else the one ``make launcher``
    built in this checkout (``build/launcher/launcher``)."""
    given = str(settings["launcher"] or "")
    if given:
        return Path(given)
    if INSTALLED_LAUNCHER.is_file():
        return INSTALLED_LAUNCHER
    return Path(__file__).resolve().parents[2] / "build" / "launcher" / "launcher"


def created_time(settings: Settings, logger: Any) -> str:
    """``SOURCE_DATE_EPOCH`` as RFC 3339, else upstream's fixed 1980-01-01T00:00:01Z."""
    raw = str(settings["source-date-epoch"] or "")
    if raw:
        try:
            when = datetime.fromtimestamp(int(raw), tz=UTC)
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, OverflowError, OSError):
            logger.warning("Ignoring invalid SOURCE_DATE_EPOCH")
    return DEFAULT_CREATED


def analyze_inputs(settings: Settings, output: str, store: ImageStore) -> AnalyzeInputs:
    """The analyzer's inputs; references checked up front (exit 3)."""
    from lifecycle.phases.analyzer import AnalyzeInputs

    tags = tuple(settings["tag"])
    check_refs(output, *tags, str(settings["previous-image"]))
    check_same_registry(output, tags, oci=bool(settings["oci"]))
    inputs = AnalyzeInputs(output_image=output, run_image=run_image(settings, store, output),
                           previous_image=str(settings["previous-image"] or output),
                           skip_layers=bool(settings["skip-layers"]), layers=Path(settings["layers"]))
    check_refs(inputs.run_image)
    return inputs


def export_inputs(settings: Settings, api: str, store: ImageStore, logger: Any, *, output: str,
                  tags: tuple[str, ...]) -> ExportInputs:
    """The exporter's inputs: the run image per D11 (``-run-image`` wins over analyzed.toml, with
    a warning when they name different images), the previous image from analyzed.toml."""
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.phases.exporter import ExportInputs

    s = settings
    check_refs(output, *tags)
    check_same_registry(output, tags, oci=bool(s["oci"]))
    try:
        analyzed = analyzed_file.read(s["analyzed"])
    except (ValueError, LifecycleError) as exc:
        raise InputError(f"failed to read analyzed metadata {s['analyzed']}: {str(exc).splitlines()[0]}") from None
    if analyzed is None:
        logger.warning(f'No analyzed metadata found at path "{s["analyzed"]}"')
    recorded = analyzed.run_image.reference if analyzed and analyzed.run_image else ""
    flag = str(s["run-image"] or "")
    if flag:
        check_refs(flag)
        if recorded and _names_differ(store, flag, recorded):
            logger.warning(f"-run-image {flag} differs from the run image in analyzed.toml ({recorded}); using {flag}")
        run_ref = flag
    elif recorded:
        run_ref = recorded
    else:
        raise InputError("run image not found in analyzed metadata")
    previous = analyzed.previous_image.reference if analyzed and analyzed.previous_image else ""
    return ExportInputs(
        output_image=output, tags=tags, run_image=run_ref, previous_image=previous,
        app=Path(s["app"]), layers=Path(s["layers"]), group=Path(s["group"]), launcher=launcher_path(s),
        process_type=str(s["process-type"] or ""), project_metadata=Path(s["project-metadata"]),
        run=Path(s["run"]), uid=int(s["uid"]), gid=int(s["gid"]), platform_api=api,
        exec_env=str(s["exec-env"] or ""), created=created_time(s, logger),
        launch_cache=Path(s["launch-cache"]) if s["launch-cache"] and s["daemon"] else None,
        sbom_referrer=sbom_referrer(s))


def sbom_referrer(settings: Settings) -> bool:
    """``-sbom-referrer``; with ``-daemon`` an input error (a Docker daemon keeps no referrers)."""
    wanted = bool(settings["sbom-referrer"])
    if wanted and settings["daemon"]:
        raise InputError("-sbom-referrer needs -oci or a registry: a Docker daemon keeps no OCI referrers")
    return wanted


def rebase_inputs(settings: Settings, *, output: str, tags: tuple[str, ...]) -> RebaseInputs:
    """The rebaser's inputs: the app image is ``-previous-image``, else the output image."""
    from lifecycle.phases.rebaser import RebaseInputs

    previous = str(settings["previous-image"] or "") or output
    run_ref = str(settings["run-image"] or "")
    check_refs(output, *tags, previous, run_ref)
    check_same_registry(output, tags, oci=bool(settings["oci"]))
    return RebaseInputs(output_image=output, tags=tags, app_image=previous, run_image=run_ref,
                        force=bool(settings["force"]))


def _names_differ(store: ImageStore, flag: str, recorded: str) -> bool:
    """Whether ``-run-image`` names another image than analyzed.toml's ``<name>@<digest>``."""
    same = store.names_image(flag, recorded, first_found=True)
    if same is not None:
        return not same
    try:
        return refs.parse(flag).name != refs.parse(recorded).name
    except refs.ReferenceError:
        return flag != recorded
