"""Input resolution shared by the phases that touch images (analyzer, exporter, creator)."""

from __future__ import annotations

from lifecycle.cli._command import Context
from lifecycle.errors import InputError
from lifecycle.files import run as run_toml
from lifecycle.image import ref as refs
from lifecycle.image.store import LayoutStore, open_store


def store_for(ctx: Context) -> LayoutStore:
    """The image store the flags ask for."""
    s = ctx.settings
    return open_store(oci=bool(s["oci"]), daemon=bool(s["daemon"]), oci_dir=str(s["oci-dir"]))


def run_image(ctx: Context, *, oci: bool) -> str:
    """``-run-image``, else ``CNB_RUN_IMAGE``, else the first image of run.toml (D6)."""
    value = str(ctx.settings["run-image"] or "")
    if value:
        return value
    value = run_toml.first_image(ctx.settings["run"])
    if value:
        return value
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


def check_same_registry(output: str, tags: tuple[str, ...]) -> None:
    """Output and ``-tag`` images must share a registry (upstream's rule)."""
    if not tags or output.startswith("/"):
        return
    registry = refs.parse(output).registry
    for tag in tags:
        if not tag.startswith("/") and refs.parse(tag).registry != registry:
            raise InputError("writing to multiple registries is unsupported")
