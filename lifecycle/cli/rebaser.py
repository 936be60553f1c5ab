"""Rebaser: puts an app image on a new run image without rebuilding it (the run image's layers
under the app's are swapped; config and labels follow), and saves it (as an OCI layout with -oci).

Usage: rebaser [flags] <image> [<tag>...]
"""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("daemon", "force", "gid", "insecure-registry", "oci", "oci-dir", "previous-image", "report", "run-image",
         "uid")
ARGS = (1, None)
USAGE_ARGS = "<image> [<tag>...]"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(keychain=True)


def run(ctx: Context) -> None:
    """Resolve inputs, rebase, write report.toml."""
    from pathlib import Path

    from lifecycle.errors import ExitCode, InputError, LifecycleError
    from lifecycle.phases.rebaser import rebase
    from lifecycle.phases.save import write_report
    from lifecycle.platform.resolve import image_store, rebase_inputs

    s = ctx.settings
    store = image_store(s, ctx.keychain, ctx.daemon)
    if s["daemon"]:
        raise InputError("rebasing images in a Docker daemon (-daemon) is not supported yet; use -oci layouts "
                         "or a registry")
    result = rebase(rebase_inputs(s, output=ctx.args[0], tags=tuple(ctx.args[1:])), store, ctx.logger)
    try:
        write_report(Path(s["report"]), result)
    except OSError as exc:
        raise LifecycleError(f"failed to write rebase report: {exc.strerror or exc}: {s['report']}",
                             ExitCode.REBASE) from None
