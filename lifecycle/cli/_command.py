"""Build one phase's typer command from the flag table and run it.

Each ``lifecycle.cli.<program>`` module declares ``FLAGS`` (names from
:data:`lifecycle.platform.flags.FLAGS`), ``ARGS`` (min, max positional count; max None = any) and
``run(ctx)``, and may declare ``PRIVILEGES`` (a :class:`~lifecycle.priv.Privileges`; default: no
root setup). This module owns the common template: parse, configure logs, check the Platform API,
prepare as root and drop to the CNB user (``spec/trust-model.md``), run, and turn
:class:`~lifecycle.errors.LifecycleError` into ``ERROR: ...`` plus its exit code.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lifecycle import __version__, log
from lifecycle.api import ApiVersion, platform_api
from lifecycle.cli._argv import normalize
from lifecycle.errors import ExitCode, InputError, LifecycleError
from lifecycle.platform.flags import COMMON, FLAGS, Flag
from lifecycle.platform.settings import Settings
from lifecycle.priv import (
    BuildUser,
    PrivilegeError,
    Privileges,
    build_user,
    connect_daemon,
    drop_to,
    ensure_owner,
    ensure_owner_below,
    is_root,
)
from lifecycle.priv.preload import preload

if TYPE_CHECKING:
    from lifecycle.image.auth import Keychain
    from lifecycle.priv.daemon import DaemonSockets

_PY_TYPES: dict[str, Any] = {"str": str, "path": str, "int": int, "bool": bool, "list": list[str]}


@dataclass(frozen=True)
class Context:
    """What a phase's CLI module gets: resolved settings, positionals, Platform API, logger."""

    program: str
    settings: Settings
    args: tuple[str, ...]
    api: ApiVersion
    logger: Any
    keychain: Keychain | None = None  # registry credentials, read as root before the drop
    daemon: DaemonSockets | None = None  # Docker daemon connections, opened as root before the drop


def _option(flag: Flag) -> inspect.Parameter:
    names = [flag.name, *flag.aliases]
    decls = [f"--{n}/--no-{n}" if flag.kind == "bool" else f"--{n}" for n in names]
    metavar = {"bool": None, "int": "int", "list": "value"}.get(flag.kind, "string")
    env = f" [env: {', '.join(flag.env)}]" if flag.env else ""
    default = f" (default: {flag.default})" if flag.default not in (None, "", (), False) else ""
    opt = typer.Option(*decls, help=f"{flag.help}{default}{env}", metavar=metavar, show_default=False)
    py_type: Any = _PY_TYPES[flag.kind]
    annotation: Any = Annotated[py_type | None, opt]  # a type built at runtime
    return inspect.Parameter(flag.name.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY,
                             default=None, annotation=annotation)


def _flags_of(module: ModuleType) -> list[Flag]:
    return [FLAGS[name] for name in (*module.FLAGS, *COMMON)]


def run_program(program: str, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``program`` (a phase name such as ``analyzer``) with ``argv``; return the exit code."""
    module = importlib.import_module(f"lifecycle.cli.{program}")
    unsupported = getattr(module, "UNSUPPORTED", "")
    if unsupported:
        # A phase we do not implement: its flags are not ours to parse; say so in one line.
        print(f"ERROR: {unsupported}")
        return ExitCode.INVALID_ARGS
    flags = _flags_of(module)
    takes_value = {"version": False}
    for flag in flags:
        for name in (flag.name, *flag.aliases):
            takes_value[name] = flag.takes_value
    result: list[int] = []

    def command(**kwargs: Any) -> None:
        result.append(_execute(program, module, flags, kwargs, environ))

    params = [_option(f) for f in flags]
    params.append(inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY, default=False,
                                    annotation=Annotated[bool, typer.Option("--version",
                                                                            help="print the version")]))
    params.append(inspect.Parameter("args", inspect.Parameter.KEYWORD_ONLY, default=None,
                                    annotation=Annotated[list[str] | None,
                                                         typer.Argument(metavar=module.USAGE_ARGS)]))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = module.__doc__
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                      context_settings={"allow_interspersed_args": False,
                                        "help_option_names": ["--help"]})
    app.command()(command)
    try:
        app(normalize(argv, takes_value), prog_name=program, standalone_mode=True)
    except SystemExit as exc:
        if result:
            return result[0]
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.FAILED
    return result[0] if result else ExitCode.OK


def _execute(program: str, module: ModuleType, flags: list[Flag], kwargs: dict[str, Any],
             environ: Mapping[str, str]) -> int:
    if kwargs.pop("version", False):
        print(__version__)
        return ExitCode.OK
    positionals = tuple(kwargs.pop("args", None) or ())
    given = {f.name: kwargs.get(f.name.replace("-", "_")) for f in flags}
    settings = Settings(given, environ)
    level = str(settings["log-level"])
    log.configure(level if log.valid_level(level) else "info")
    logger = log.get_logger()
    try:
        if not log.valid_level(level):
            raise LifecycleError(f"failed to parse arguments: invalid log level '{level}'",
                                 ExitCode.INVALID_ARGS)
        api, defaulted = platform_api(environ.get("CNB_PLATFORM_API"))
        if defaulted:
            logger.warning(f"CNB_PLATFORM_API is not set; using the newest supported Platform API {api}")
        for arg in positionals:
            if arg.startswith("-"):
                logger.warning(f"unconsumed flag-like positional arg: \n\t{arg}\n\t"
                               " This will not be interpreted as a flag.\n\t"
                               "Did you mean to put this before the first positional argument?")
        low, high = module.ARGS
        _check_arity(program, positionals, low, high)
        settings, keychain, daemon = _prepare(getattr(module, "PRIVILEGES", Privileges()), settings, positionals,
                                              logger)
        module.run(Context(program, settings, positionals, api, logger, keychain, daemon))
    except LifecycleError as exc:
        logger.error(exc.message)
        return exc.code
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    except Exception as exc:  # the one place that turns crashes into one line
        if level == "debug":
            traceback.print_exc(file=sys.stdout)
        logger.error(f"unexpected failure: {type(exc).__name__}: {exc}")
        return ExitCode.FAILED
    return ExitCode.OK


def _prepare(policy: Privileges, settings: Settings, args: tuple[str, ...], logger: Any
             ) -> tuple[Settings, Keychain | None, DaemonSockets | None]:
    """The root-only setup ``policy`` allows, then the drop to the CNB user for good.

    Runs before the phase touches any tree a buildpack can write. As root with a non-zero
    ``-uid``/``CNB_USER_ID``: hand the policy's directories (and, with ``-oci``, the output layouts
    named by ``args`` and ``-tag``) to that user, read the registry keychain, connect to the Docker
    daemon (``-daemon``), drop. Settings come back with that user's ``HOME``/``USER`` for the
    processes the phase starts. As root with uid 0, or when not root, nothing changes hands, no
    connection is opened early and nothing is dropped.
    """
    keychain = None
    registry = _touches_registries(policy, settings)
    if registry:
        from lifecycle.image.auth import Keychain

        keychain = Keychain.from_environ(settings.environ)
        if is_root():
            from lifecycle.image.registry_client import tls_context

            tls_context()  # the CA bundle, while it is still readable (registry_client.tls_context)
    uid, gid = int(settings["uid"]), int(settings["gid"])
    if not is_root() or uid == 0:
        return settings, keychain, None
    user = build_user(uid, gid)
    logger.debug(f"Ensuring privileges: running as {uid}:{gid}")
    for name in policy.chown:
        path = str(settings[name] or "")
        try:
            ensure_owner(user, path)
        except OSError as exc:
            raise InputError(f"failed to chown {path} to {uid}:{gid}: {exc.strerror or exc}") from None
    if policy.layout_outputs and settings["oci"]:
        _hand_layout_outputs(user, settings, (*args, *(settings["tag"] or ())))
    daemon = None
    uses_daemon = policy.daemon and bool(settings["daemon"])
    if uses_daemon:
        daemon = connect_daemon(settings.environ.get("DOCKER_HOST", ""))
    preload(registry=registry, daemon=uses_daemon)
    try:
        drop_to(user)
    except PrivilegeError as exc:
        raise InputError(str(exc)) from None
    return Settings(settings.given, user.environ(settings.environ), settings.cwd), keychain, daemon


def _hand_layout_outputs(user: BuildUser, settings: Settings, outputs: tuple[str, ...]) -> None:
    """Hand each output image's layout directory (where the resolver puts it under ``-oci-dir``) to
    ``user``: a platform may have made it as root (pack does for ``oci:<dir>``). A name that does
    not resolve is left for the phase to report."""
    from lifecycle.platform.resolve import output_layouts

    root = str(settings["oci-dir"] or "")
    if not root:
        return
    for rel in output_layouts(root, outputs):
        try:
            ensure_owner_below(user, root, rel)
        except OSError as exc:
            path = os.path.join(root, rel)
            raise InputError(f"failed to chown {path} to {user.uid}:{user.gid}: {exc.strerror or exc}") from None


def _touches_registries(policy: Privileges, settings: Settings) -> bool:
    """Whether the phase may reach a registry: registry images (the default mode), or a registry
    cache image in any mode (decision D14); only phases whose policy reads the keychain do."""
    cache_image = str(settings["cache-image"] or "")
    registry_cache = bool(cache_image) and not cache_image.startswith("oci:")
    return policy.keychain and ((not settings["oci"] and not settings["daemon"]) or registry_cache)


def _check_arity(program: str, args: tuple[str, ...], low: int, high: int | None) -> None:
    n = len(args)
    if high is not None and low == high and n != low:
        if low == 0:
            raise LifecycleError("failed to parse arguments: received unexpected arguments",
                                 ExitCode.INVALID_ARGS)
        raise LifecycleError(f"failed to parse arguments: received {n} arguments, but expected {low}",
                             ExitCode.INVALID_ARGS)
    if n < low:
        raise LifecycleError("failed to parse arguments: at least one image argument is required",
                             ExitCode.INVALID_ARGS)


def program_environ() -> dict[str, str]:
    """The process environment, read once here and passed down."""
    return dict(os.environ)
