"""Platform input resolution: resolved settings -> the typed, frozen inputs of each phase.

What the platform says, in one place (upstream's ``platform/resolve_inputs.go``): D11's run-image
precedence (``-run-image`` > ``CNB_RUN_IMAGE`` > ``run.toml``, and the flag over ``analyzed.toml``
with a warning), where the launcher is, ``SOURCE_DATE_EPOCH`` as the image's created time, which
image store and cache the flags pick, the files each phase reads before it starts (``group.toml``,
``plan.toml``, ``analyzed.toml``), and the up-front checks (references, the analyzer's registry
access). Phases get the frozen inputs this module returns and never read settings, env or argv
themselves. The phase commands and the creator call the same functions (the creator with its own
few differences as arguments: ``-skip-restore``, and the run image the analyzer pinned).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.api import ApiVersion
from lifecycle.errors import ExitCode, InputError, LifecycleError
from lifecycle.files import run as run_toml
from lifecycle.image import ref as refs
from lifecycle.image.store import ImageStore, open_store
from lifecycle.platform.settings import Settings

if TYPE_CHECKING:
    from lifecycle.cache import Cache
    from lifecycle.image.auth import Keychain
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.registry import RegistryStore
    from lifecycle.image.store import LayoutStore
    from lifecycle.phases.analyzer import AnalyzeInputs
    from lifecycle.phases.builder import BuildInputs
    from lifecycle.phases.detector import DetectInputs
    from lifecycle.phases.exporter import ExportInputs
    from lifecycle.phases.rebaser import RebaseInputs
    from lifecycle.phases.restorer import RestoreInputs

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


def check_outputs(*outputs: str, oci: bool, oci_dir: str = "") -> None:
    """Names the phase writes (the image, ``-tag``s): see :func:`~lifecycle.image.resolver.check_output`."""
    from lifecycle.image.resolver import check_output

    for text in outputs:
        check_output(text, oci=oci, oci_dir=oci_dir)


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


def skip_layers(settings: Settings, *, creator: bool = False) -> bool:
    """``-skip-layers``; in the creator ``-skip-restore`` too (its name for it)."""
    return bool(settings["skip-layers"]) or (creator and bool(settings["skip-restore"]))


def analyze_inputs(settings: Settings, output: str, store: ImageStore, *, creator: bool = False) -> AnalyzeInputs:
    """The analyzer's inputs; references checked up front (exit 3)."""
    from lifecycle.phases.analyzer import AnalyzeInputs

    tags = tuple(settings["tag"])
    check_refs(output, *tags, str(settings["previous-image"]))
    check_outputs(output, *tags, oci=bool(settings["oci"]), oci_dir=str(settings["oci-dir"]))
    check_same_registry(output, tags, oci=bool(settings["oci"]))
    inputs = AnalyzeInputs(output_image=output, run_image=run_image(settings, store, output),
                           previous_image=str(settings["previous-image"] or output),
                           skip_layers=skip_layers(settings, creator=creator), layers=Path(settings["layers"]))
    check_refs(inputs.run_image)
    return inputs


def prepare_analyze(settings: Settings, output: str, store: ImageStore, logger: Any,
                    keychain: Keychain | None = None, *, creator: bool = False) -> AnalyzeInputs:
    """The analyzer's inputs after upstream's checks before any build work: ``-cache-image``'s
    form, every reference, and in registry mode read access to the run and previous images and
    write access to the output image, every tag and a registry cache image (in every mode)."""
    from lifecycle.cache import cache_image_in_layout, check_cache_image
    from lifecycle.image.access import ensure_registry_access, ensure_store_access
    from lifecycle.image.store import registry_store

    s = settings
    if s["launch-cache"] and not s["daemon"]:
        logger.warning("Ignoring -launch-cache, only intended for use with -daemon")
    check_cache_image(s)
    cache_image = str(s["cache-image"] or "")
    registry_cache = cache_image if cache_image and cache_image_in_layout(cache_image) is None else ""
    check_refs(registry_cache)
    inputs = analyze_inputs(s, output, store, creator=creator)
    checked = ensure_store_access(store, read=[inputs.previous_image, inputs.run_image],  # type: ignore[arg-type]
                                  write=[registry_cache, inputs.output_image, *s["tag"]])
    if registry_cache and not checked:
        ensure_registry_access(registry_store(tuple(s["insecure-registry"] or ()), s.environ, keychain,
                                              registry_timeout=int(s["registry-timeout"]),
                                              registry_deadline=int(s["registry-deadline"])),
                               write=[registry_cache])
    return inputs


def detect_inputs(settings: Settings, api: ApiVersion) -> DetectInputs:
    """The detector's inputs."""
    from lifecycle.phases.detector import DetectInputs

    s = settings
    return DetectInputs(app_dir=Path(s["app"]), buildpacks_dir=Path(s["buildpacks"]), order_path=Path(s["order"]),
                        system_path=Path(s["system"]), platform_dir=Path(s["platform"]),
                        analyzed_path=Path(s["analyzed"]), platform_api=api, build_config_dir=_build_config(s),
                        exec_env=str(s["exec-env"] or ""), environ=s.environ)


def restore_inputs(settings: Settings, api: ApiVersion, logger: Any, *, creator: bool = False) -> RestoreInputs:
    """The restorer's inputs: the group, and the layers metadata of analyzed.toml (a missing or
    unusable file is a warning). ``-build-image`` (image extensions) is refused (exit 3)."""
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.files import group as group_file
    from lifecycle.phases.restorer import RestoreInputs

    s = settings
    if s["build-image"]:
        # pack passes it for builders with image extensions; refuse before touching anything.
        raise LifecycleError(f"image extensions are not supported: -build-image {s['build-image']} asks to "
                             "extend the build image", ExitCode.INVALID_ARGS)
    group = group_file.read(Path(s["group"]))
    metadata: dict[str, object] = {}
    try:
        analyzed = analyzed_file.read(Path(s["analyzed"]))
    except (ValueError, LifecycleError) as exc:
        logger.warning(f"Not using analyzed data, usable file not found: {exc}")
        analyzed = None
    else:
        if analyzed is None:
            logger.warning(f"Not using analyzed data, usable file not found: open {s['analyzed']}: "
                           "no such file or directory")
    if analyzed is not None:
        metadata = dict(analyzed.metadata)
    return RestoreInputs(layers_dir=Path(s["layers"]), group=tuple(group.group), layers_metadata=metadata,
                         skip_layers=skip_layers(s, creator=creator), uid=int(s["uid"]), gid=int(s["gid"]),
                         platform_api=api)


def restore_cache(settings: Settings, logger: Any, keychain: Keychain | None = None) -> Cache | None:
    """The cache the restorer reads (``-cache-dir`` or ``-cache-image``); none is a warning, an
    unusable one exit 22."""
    from lifecycle import cache as cache_mod

    if not settings["cache-dir"] and not settings["cache-image"]:
        logger.warning("No cached data will be used, no cache specified.")
    try:
        return cache_mod.from_settings(settings, logger, keychain)
    except cache_mod.CacheError as exc:
        raise LifecycleError(str(exc), ExitCode.RESTORE) from None


def build_inputs(settings: Settings, api: ApiVersion, logger: Any) -> BuildInputs:
    """The builder's inputs: group.toml, plan.toml and analyzed.toml read (a missing analyzed.toml
    is a warning)."""
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.files import group as group_file
    from lifecycle.files import plan as plan_file
    from lifecycle.phases.builder import BuildInputs

    s = settings
    analyzed_path = Path(s["analyzed"])
    analyzed = analyzed_file.read(analyzed_path)
    if analyzed is None:
        logger.warning(f'No analyzed metadata found at path "{analyzed_path}"')
    return BuildInputs(app_dir=Path(s["app"]), layers_dir=Path(s["layers"]), platform_dir=Path(s["platform"]),
                       buildpacks_dir=Path(s["buildpacks"]), group=group_file.read(Path(s["group"])),
                       plan=plan_file.read(Path(s["plan"])), platform_api=api, analyzed=analyzed,
                       build_config_dir=_build_config(s), exec_env=str(s["exec-env"] or ""), environ=s.environ)


def _build_config(settings: Settings) -> Path | None:
    return Path(settings["build-config"]) if settings["build-config"] else None


def export_inputs(settings: Settings, api: str, store: ImageStore, logger: Any, *, output: str,
                  tags: tuple[str, ...], creator: bool = False) -> ExportInputs:
    """The exporter's inputs: the run image per D11 (``-run-image`` wins over analyzed.toml, with
    a warning when they name different images), the previous image from analyzed.toml. The
    creator takes the run image its analyzer step pinned in analyzed.toml, as a separate exporter
    run after the analyzer does (same inputs, same image either way)."""
    from lifecycle.files import analyzed as analyzed_file
    from lifecycle.phases.exporter import ExportInputs

    s = settings
    check_refs(output, *tags)
    check_outputs(output, *tags, oci=bool(s["oci"]), oci_dir=str(s["oci-dir"]))
    check_same_registry(output, tags, oci=bool(s["oci"]))
    try:
        analyzed = analyzed_file.read(s["analyzed"])
    except (ValueError, LifecycleError) as exc:
        raise InputError(f"failed to read analyzed metadata {s['analyzed']}: {str(exc).splitlines()[0]}") from None
    if analyzed is None:
        logger.warning(f'No analyzed metadata found at path "{s["analyzed"]}"')
    recorded = analyzed.run_image.reference if analyzed and analyzed.run_image else ""
    flag = "" if creator else str(s["run-image"] or "")
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


def export_cache(settings: Settings, logger: Any, keychain: Keychain | None = None, *,
                 creator: bool = False) -> Cache | None:
    """The cache the exporter writes, or None (an unusable one is a warning: the image is still
    exported). Warns about flags that take no effect (the creator's earlier steps said so already)."""
    from lifecycle.cache import CacheError, from_settings

    s = settings
    try:
        cache = from_settings(s, logger, keychain)
    except CacheError as exc:
        logger.warning(f"Failed to export cache: {exc}")
        cache = None
    if s["launch-cache"] and not s["daemon"] and not creator:  # the analyzer step said so
        logger.warning("Ignoring -launch-cache, only intended for use with -daemon")
    if cache is None:
        if not creator:  # the creator's restore step already said so
            logger.warning("No cached data will be used, no cache specified.")
        if s["parallel"]:
            logger.warning("Parallel export has been enabled, but it has not taken effect because no cache "
                           "has been specified.")
    return cache


def rebase_inputs(settings: Settings, *, output: str, tags: tuple[str, ...]) -> RebaseInputs:
    """The rebaser's inputs: the app image is ``-previous-image``, else the output image."""
    from lifecycle.phases.rebaser import RebaseInputs

    previous = str(settings["previous-image"] or "") or output
    run_ref = str(settings["run-image"] or "")
    check_refs(output, *tags, previous, run_ref)
    check_outputs(output, *tags, oci=bool(settings["oci"]), oci_dir=str(settings["oci-dir"]))
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
