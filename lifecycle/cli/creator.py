"""Creator: analyze, detect, restore, build and export in one process (for trusted builders).

Usage: creator [flags] <image>
"""

from __future__ import annotations

from pathlib import Path

from lifecycle.cli._command import Context
from lifecycle.priv import Privileges

FLAGS = ("app", "buildpacks", "build-config", "cache-dir", "cache-image", "daemon", "gid", "launch-cache",
         "launcher", "layers", "oci", "oci-dir", "order", "parallel", "platform", "previous-image",
         "process-type", "project-metadata", "report", "run", "run-image", "sbom-referrer", "skip-restore", "system",
         "tag", "uid", "insecure-registry")
ARGS = (1, 1)
USAGE_ARGS = "<image>"
# What root does before the drop to the CNB user (spec/trust-model.md).
PRIVILEGES = Privileges(chown=("layers", "cache-dir", "launch-cache"), keychain=True, daemon=True,
                        layout_outputs=True)


def run(ctx: Context) -> None:
    """Run the five phases in order, each from its platform inputs; the failing phase's exit code
    is the creator's. Each step reads what the one before wrote (analyzed.toml, group.toml,
    plan.toml, metadata.toml), as separate phase runs do."""
    from lifecycle.phases.analyzer import analyze, write_analyzed
    from lifecycle.phases.builder import build_and_record
    from lifecycle.phases.detector import detect, write_detected
    from lifecycle.phases.export_phase import export_all, write_own_sboms
    from lifecycle.phases.restorer import restore_or_fail
    from lifecycle.platform import resolve

    s, log = ctx.settings, ctx.logger
    image = ctx.args[0]
    resolve.sbom_referrer(s)  # refused with -daemon before anything is built
    store = resolve.image_store(s, ctx.keychain, ctx.daemon)

    log.info("===> ANALYZING")
    analyze_inputs = resolve.prepare_analyze(s, image, store, log, ctx.keychain, creator=True)
    write_analyzed(s["analyzed"], analyze(analyze_inputs, store, log))

    log.info("===> DETECTING")
    write_detected(detect(resolve.detect_inputs(s, ctx.api), log), Path(s["group"]), Path(s["plan"]))

    log.info("===> RESTORING")
    restore_inputs = resolve.restore_inputs(s, ctx.api, log, creator=True)
    restore_or_fail(restore_inputs, resolve.restore_cache(s, log, ctx.keychain), log)

    log.info("===> BUILDING")
    build_and_record(resolve.build_inputs(s, ctx.api, log), log)

    log.info("===> EXPORTING")
    export_inputs = resolve.export_inputs(s, str(ctx.api), store, log, output=image, tags=tuple(s["tag"]),
                                          creator=True)
    write_own_sboms(export_inputs.layers)
    cache = resolve.export_cache(s, log, ctx.keychain, creator=True)
    export_all(export_inputs, store, cache, parallel=bool(s["parallel"]), report=Path(s["report"]), logger=log)
