"""The app image's config: the run image's config plus env, entrypoint, history and the
buildpacks labels (upstream-lifecycle.md §7.13, §8.3). Pure functions of their inputs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifecycle.files import metadata as metadata_file
from lifecycle.files import run as run_toml
from lifecycle.image.draft import Draft, Part
from lifecycle.image.store import StoredImage

LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"
BUILD_LABEL = "io.buildpacks.build.metadata"
PROJECT_LABEL = "io.buildpacks.project.metadata"
EXEC_ENV_LABEL = "io.buildpacks.exec-env"
LAUNCHER_PATH = "/cnb/lifecycle/launcher"
PROCESS_DIR = "/cnb/process"


def app_draft(run_image: StoredImage, *, layers: Sequence[tuple[Part, str]], entrypoint: str,
              env: dict[str, str], working_dir: str, created: str, labels: dict[str, str]) -> Draft:
    """The app image: ``layers`` are (layer, created_by) on top of the run image's layers; ``env``
    is set (``PATH`` gets ``/cnb/process`` and ``/cnb/lifecycle`` in front); ``labels`` are added
    to the run image's."""
    base = run_image.config.dump()
    base.pop("container", None)
    base["created"] = created
    draft = Draft.on(run_image, config=base, history=run_history(run_image, created))
    draft = draft.append(*((part, {"created": created, "created_by": created_by}) for part, created_by in layers))

    def launch_settings(config: dict[str, Any]) -> None:
        cfg = config.setdefault("config", {})
        lines = set_env(cfg.get("Env") or [], env)
        lines = set_env(lines, {"PATH": f"{PROCESS_DIR}:/cnb/lifecycle:{env_value(lines, 'PATH') or ''}"})
        cfg["Env"] = lines
        cfg["WorkingDir"] = working_dir
        cfg["Entrypoint"] = [f"{PROCESS_DIR}/{entrypoint}"] if entrypoint else [LAUNCHER_PATH]
        cfg.pop("Cmd", None)
        cfg["Labels"] = {**(cfg.get("Labels") or {}), **labels}

    return draft.edit(launch_settings)


def run_history(run_image: StoredImage, created: str | None) -> list[dict[str, Any]]:
    """History rows for the run image's layers in an app image: its entries without ``empty_layer``
    ones, each stamped ``created`` (when given); history that no longer lines up with the layers is
    replaced by blank entries, as upstream does."""
    history = [h for h in (run_image.config.history or []) if not h.empty_layer]
    rows = [h.dump() for h in history] if len(history) == len(run_image.diff_ids) else \
        [{} for _ in run_image.diff_ids]
    for row in rows:
        row.pop("empty_layer", None)
        if created is not None:
            row["created"] = created
    return rows


def lifecycle_label(run_image: StoredImage, *, app: Sequence[str], slots: dict[str, str],
                    buildpacks: list[dict[str, Any]], run_entry: dict[str, Any]) -> dict[str, Any]:
    """``io.buildpacks.lifecycle.metadata``, keys in upstream's order; ``slots`` holds the diffIDs
    of the ``sbom``, ``config``, ``launcher`` and ``process-types`` layers."""
    label: dict[str, Any] = {"app": [{"sha": sha} for sha in app]}
    if "sbom" in slots:
        label["sbom"] = {"sha": slots["sbom"]}
    label["buildpacks"] = buildpacks
    for slot in ("config", "launcher", "process-types"):
        label[slot] = {"sha": slots.get(slot, "")}
    label["runImage"] = {"topLayer": run_image.diff_ids[-1] if run_image.diff_ids else "",
                         "reference": run_image.identifier, **run_entry}
    label["stack"] = {"runImage": run_entry}
    return label


def build_label(meta: metadata_file.BuildMetadata, launcher_version: str) -> dict[str, Any]:
    """``io.buildpacks.build.metadata``: buildpacks (no ``api``), launcher, processes."""
    buildpacks = []
    for bp in meta.buildpacks:
        item: dict[str, Any] = {"id": bp.id, "version": bp.version}
        if bp.homepage:
            item["homepage"] = bp.homepage
        buildpacks.append(item)
    processes = []
    for proc in meta.processes:
        p: dict[str, Any] = {"type": proc.type, "command": list(proc.command), "args": list(proc.args),
                             "direct": proc.direct, "buildpackID": proc.buildpack_id}
        if proc.working_dir:
            p["working-dir"] = proc.working_dir
        processes.append(p)
    launcher = {"version": launcher_version, "source": {"git": {"repository": "", "commit": ""}}}
    label: dict[str, Any] = {"buildpacks": buildpacks, "launcher": launcher, "processes": processes}
    if meta.buildpack_default_process_type:
        label["buildpack-default-process-type"] = meta.buildpack_default_process_type
    return label


def run_toml_entry(run_path: Path, run_image_ref: str, run_image: StoredImage) -> dict[str, Any]:
    """``image``/``mirrors`` for the label: the first ``run.toml`` entry, else the run image as named."""
    images = run_toml.read_images(run_path)
    if images:
        first = images[0]
        entry: dict[str, Any] = {"image": str(first["image"])}
        if first.get("mirrors"):
            entry["mirrors"] = [str(x) for x in first["mirrors"]]
        return entry
    if run_image_ref.startswith("/"):
        return {"image": str(run_image.path)}
    # analyzed.toml pins registry run images as <name>@<digest>; the label records the name.
    return {"image": run_image_ref.split("@", 1)[0]}


def set_env(env: list[str], values: dict[str, str]) -> list[str]:
    """``KEY=value`` lines with ``values`` set in place (or appended)."""
    out = list(env)
    for key, value in values.items():
        line = f"{key}={value}"
        for i, existing in enumerate(out):
            if existing.split("=", 1)[0] == key:
                out[i] = line
                break
        else:
            out.append(line)
    return out


def env_value(env: list[str], key: str) -> str | None:
    """The value of ``key`` in ``KEY=value`` lines."""
    for line in env:
        name, _, value = line.partition("=")
        if name == key:
            return value
    return None


def compact_json(data: Any) -> str:
    """Label values: compact JSON, as Go's encoder writes them."""
    return json.dumps(data, separators=(",", ":"))
