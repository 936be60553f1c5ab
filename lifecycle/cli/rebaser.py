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
    from lifecycle.cli._inputs import check_refs, check_same_registry, store_for, write_report
    from lifecycle.errors import ExitCode, InputError, LifecycleError
    from lifecycle.phases.rebaser import RebaseInputs, rebase

    s = ctx.settings
    output, tags = ctx.args[0], tuple(ctx.args[1:])
    store = store_for(ctx)
    if s["daemon"]:
        raise InputError("rebasing images in a Docker daemon (-daemon) is not supported yet; use -oci layouts "
                         "or a registry")
    previous = str(s["previous-image"] or "") or output
    run_image = str(s["run-image"] or "")
    check_refs(output, *tags, previous, run_image)
    check_same_registry(output, tags, oci=bool(s["oci"]))
    result = rebase(RebaseInputs(output_image=output, tags=tags, app_image=previous, run_image=run_image,
                                 force=bool(s["force"])), store, ctx.logger)
    try:
        write_report(ctx, result)
    except OSError as exc:
        raise LifecycleError(f"failed to write rebase report: {exc.strerror or exc}: {s['report']}",
                             ExitCode.REBASE) from None
