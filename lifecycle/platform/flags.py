"""The one table of lifecycle inputs: flag names, aliases, env vars and defaults.

Phases name the inputs they take; the CLI builds its options from this table, and
:mod:`lifecycle.platform.settings` resolves flag > env > default. ``spec/flags.md`` documents it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["str", "bool", "int", "list", "path"]

LAYERS_PLACEHOLDER = "<layers>"


@dataclass(frozen=True)
class Flag:
    """One input: ``name`` is the flag without dashes (also the settings key)."""

    name: str
    kind: Kind
    help: str
    env: tuple[str, ...] = ()
    default: str | bool | int | tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    metavar: str = ""

    @property
    def takes_value(self) -> bool:
        """Bools are switches (``-oci``, ``-oci=false``); everything else takes a value."""
        return self.kind != "bool"


def _f(name: str, kind: Kind, help: str, env: tuple[str, ...] = (), default: object = None,
       aliases: tuple[str, ...] = ()) -> Flag:
    return Flag(name=name, kind=kind, help=help, env=env, default=default,  # type: ignore[arg-type]
                aliases=aliases)


_L = LAYERS_PLACEHOLDER

FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        _f("analyzed", "path", "path to analyzed.toml", ("CNB_ANALYZED_PATH",), f"{_L}/analyzed.toml"),
        _f("app", "path", "path to the application directory", ("CNB_APP_DIR",), "/workspace"),
        _f("buildpacks", "path", "path to the buildpacks directory", ("CNB_BUILDPACKS_DIR",),
           "/cnb/buildpacks"),
        _f("build-image", "str", "build image to extend: image extensions are unsupported, so any value is an error",
           ("CNB_BUILD_IMAGE",), ""),
        _f("build-config", "path", "path to the build config directory", ("CNB_BUILD_CONFIG_DIR",),
           "/cnb/build-config"),
        _f("cache-dir", "path", "path to the cache directory", ("CNB_CACHE_DIR",), ""),
        _f("cache-image", "str", "cache image reference", ("CNB_CACHE_IMAGE",), ""),
        _f("daemon", "bool", "read and write images in a Docker daemon", ("CNB_USE_DAEMON",), False),
        _f("force", "bool", "rebase even when the app image is not marked rebasable, its target differs from the "
           "new run image's, or the new run image is not in its run image metadata", ("CNB_FORCE_REBASE",), False),
        _f("gid", "int", "group ID of the build user", ("CNB_GROUP_ID",), 0),
        _f("group", "path", "path to group.toml", ("CNB_GROUP_PATH",), f"{_L}/group.toml"),
        _f("insecure-registry", "list", "registry reachable over plain HTTP (repeatable)",
           ("CNB_INSECURE_REGISTRIES",), ()),
        _f("launch-cache", "path", "path to the launch cache directory (daemon only)",
           ("CNB_LAUNCH_CACHE_DIR",), ""),
        _f("launcher", "path", "path to the launcher put into the app image", (), ""),
        _f("layers", "path", "path to the layers directory", ("CNB_LAYERS_DIR",), "/layers"),
        _f("log-level", "str", "logging level: debug, info, warn, error", ("CNB_LOG_LEVEL",), "info"),
        _f("no-color", "bool", "disable color output", ("CNB_NO_COLOR",), False),
        _f("oci", "bool", "read and write images as OCI image layouts on disk",
           ("CNB_USE_OCI", "CNB_USE_LAYOUT"), False, ("layout",)),
        _f("oci-dir", "path", "root directory of the OCI image layouts",
           ("CNB_OCI_PATH", "CNB_LAYOUT_DIR"), "/oci", ("layout-dir",)),
        _f("order", "path", "path to order.toml", ("CNB_ORDER_PATH",), f"{_L}/order.toml"),
        _f("parallel", "bool", "export the app image and the cache concurrently",
           ("CNB_PARALLEL_EXPORT",), False),
        _f("plan", "path", "path to plan.toml", ("CNB_PLAN_PATH",), f"{_L}/plan.toml"),
        _f("platform", "path", "path to the platform directory", ("CNB_PLATFORM_DIR",), "/platform"),
        _f("previous-image", "str", "previous image reference (default: the output image)",
           ("CNB_PREVIOUS_IMAGE",), ""),
        _f("process-type", "str", "default process type of the app image", ("CNB_PROCESS_TYPE",), ""),
        _f("project-metadata", "path", "path to project-metadata.toml", ("CNB_PROJECT_METADATA_PATH",),
           f"{_L}/project-metadata.toml"),
        _f("report", "path", "path to report.toml", ("CNB_REPORT_PATH",), f"{_L}/report.toml"),
        _f("run", "path", "path to run.toml", ("CNB_RUN_PATH",), "/cnb/run.toml"),
        _f("run-image", "str", "run image reference", ("CNB_RUN_IMAGE",), ""),
        _f("sbom-referrer", "bool", "also attach the launch SBOM to the app image as OCI 1.1 referrer artifacts, one "
           "per SBOM format (layouts and registries)", ("CNB_SBOM_REFERRER",), False),
        _f("skip-layers", "bool", "do not restore layer metadata or layers", ("CNB_SKIP_LAYERS",), False),
        _f("skip-restore", "bool", "do not restore layers (creator)", ("CNB_SKIP_RESTORE",), False),
        _f("system", "path", "path to system.toml", ("CNB_SYSTEM_PATH",), "/cnb/system.toml"),
        _f("tag", "list", "additional tag for the app image (repeatable)", (), ()),
        _f("uid", "int", "user ID of the build user", ("CNB_USER_ID",), 0),
    )
}

# Inputs with no flag: read from the environment only.
ENV_ONLY: dict[str, Flag] = {
    f.name: f
    for f in (
        _f("exec-env", "str", "execution environment", ("CNB_EXEC_ENV",), "production"),
        _f("source-date-epoch", "str", "created time of the app image (seconds)", ("SOURCE_DATE_EPOCH",), ""),
        _f("registry-auth", "str", "JSON map of registry to Authorization header", ("CNB_REGISTRY_AUTH",), ""),
        _f("registry-timeout", "int", "seconds a registry may stay silent (connecting, or between bytes) before "
           "a request fails", ("CNB_REGISTRY_TIMEOUT",), 30),
        _f("registry-deadline", "int", "seconds one registry operation may take, retries included (a manifest, "
           "config or token; a blob gets 1 s more per MiB)", ("CNB_REGISTRY_DEADLINE",), 300),
        _f("experimental-mode", "str", "quiet, warn or error", ("CNB_EXPERIMENTAL_MODE",), "error"),
        _f("docker-host", "str", "Docker daemon address", ("DOCKER_HOST",), ""),
        _f("docker-config", "str", "Docker config directory", ("DOCKER_CONFIG",), ""),
    )
}

# Flags every phase takes.
COMMON = ("log-level", "no-color")
