"""The rebaser: put an app image on a new run image without rebuilding it (upstream-lifecycle.md §11).

The app image's layers up to its old run image's top layer (``runImage.topLayer`` of
``io.buildpacks.lifecycle.metadata``) are replaced by the new run image's layers; the layers above
are kept as they are. Nothing is rebuilt or recompressed: every layer blob is linked from the
layout it is in (a sparse layout stays sparse), only a new config and manifest are written. The
config is the app's, with the new run image's ``os``/``architecture``/``variant``/``os.version``,
history, ``rootfs``, ``io.buildpacks.base.*``/``io.buildpacks.stack.*`` labels, and the lifecycle
label's ``runImage`` updated; ``created``, env, entrypoint and working dir are kept, so rebasing
twice onto the same run image gives the same digest.

Checks, as upstream's ``phase/rebaser.go`` (Platform API >= 0.12): an app image labelled
``io.buildpacks.rebasable=false``, a new run image whose os/arch/variant/distro does not satisfy
the app's, or one not named in the app's run image metadata (``runImage.image``/``mirrors``) is
refused unless ``force``; apps built for Platform API < 0.12 need the same stack ID and mixins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lifecycle.api import ApiVersion
from lifecycle.errors import ExitCode, ImageError, InputError, LifecycleError
from lifecycle.image import model as m
from lifecycle.image import ref as refs
from lifecycle.image.access import NO_ACCESSIBLE_RUN_IMAGE, best_mirror, registry_of, run_image_names
from lifecycle.image.draft import Draft, Part
from lifecycle.image.parts import oci_layer, ref_name
from lifecycle.image.store import ImageStore, StoredImage
from lifecycle.phases import export_config as cfg
from lifecycle.phases.save import ExportResult, save_image

Store = ImageStore

REBASABLE_LABEL = "io.buildpacks.rebasable"
STACK_ID_LABEL = "io.buildpacks.stack.id"
MIXINS_LABEL = "io.buildpacks.stack.mixins"
SYNCED_PREFIXES = ("io.buildpacks.stack.", "io.buildpacks.base.")
FORCE_HINT = "please provide -force to override"
NOT_REBASABLE = "app image is not marked as rebasable"
TARGET_MISMATCH = "unable to satisfy target os/arch constraints; new run image: {new}, old run image: {old}"
NAME_MISMATCH = "rebase app image: new base image '{name}' not found in existing run image metadata: {existing}"


@dataclass(frozen=True)
class RebaseInputs:
    """Resolved inputs of the rebaser."""

    output_image: str
    tags: tuple[str, ...]
    app_image: str  # -previous-image, else the output image
    run_image: str = ""  # -run-image; empty: from the app image's lifecycle label
    force: bool = False


def rebase(inputs: RebaseInputs, store: Store, logger: Any) -> ExportResult:
    """Rebase the app image and save it under the output name and tags; returns what was saved."""
    try:
        return _Rebaser(inputs, store, logger).run()
    except ImageError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None


def _fail(message: str) -> LifecycleError:
    return LifecycleError(f"failed to rebase: {message}", ExitCode.REBASE)


def _app_fail(message: str) -> LifecycleError:
    return LifecycleError(f"failed to set app image: {message}", ExitCode.REBASE)


class _Rebaser:
    def __init__(self, inputs: RebaseInputs, store: Store, logger: Any) -> None:
        self.inputs = inputs
        self.store = store
        self.log = logger

    # ---- inputs ---------------------------------------------------------------------------
    def run(self) -> ExportResult:
        app, label = self._app_image()
        run_ref = self.inputs.run_image or self._run_image_from_label(label)
        new_base = self._new_base(run_ref)
        self.log.info(f"Rebasing {self.store.where(self.inputs.app_image)} on run image "
                      f"{self.store.where(run_ref)}")
        self._validate(app, new_base)
        base_count = _base_layer_count(app, label)
        if not new_base.diff_ids:
            raise _fail("get rebase run image top layer SHA: image has no layers")
        new_label = self._updated_label(label, new_base, run_ref)
        config = rebased_config(app, new_base, base_count, new_label)
        assert app.manifest is not None and new_base.manifest is not None  # layouts and registries have them
        base_layers = list(new_base.manifest.layers)
        app_layers = list(app.manifest.layers)[base_count:]
        return self._save(app, new_base, config, base_layers, app_layers)

    def _app_image(self) -> tuple[StoredImage, dict[str, Any]]:
        reference = self.inputs.app_image
        try:
            app = self.store.find(reference)
        except ImageError as exc:
            raise _app_fail(f"failed to access image to rebase: {exc}") from None
        if app is None:
            raise _app_fail(f"failed to access image to rebase: image not found "
                            f"{self.store.where_missing(reference)}")
        raw = app.config.labels.get(cfg.LIFECYCLE_LABEL)
        if not raw:
            return app, {}
        try:
            label = m.loads(raw)
        except ValueError:
            label = None
        if not isinstance(label, dict):
            raise _app_fail(f"failed to decode label '{cfg.LIFECYCLE_LABEL}' of {self.store.where(reference)}: "
                            "not a JSON object")
        return app, label

    def _run_image_from_label(self, label: dict[str, Any]) -> str:
        """``runImage.image`` and its mirrors (else ``stack.runImage``): the first one that exists
        on the app image's registry, else the first one that exists (upstream's best mirror)."""
        names = run_image_names(label.get("runImage")) or run_image_names(_get(label, "stack", "runImage"))
        if not names:
            raise _app_fail("failed to parse arguments: -run-image is required when there is no run image "
                            "metadata available")
        chosen = best_mirror(names, registry_of(self.inputs.app_image),
                             lambda name: self._exists(_without_digest(name)))
        if chosen is None:
            raise _app_fail(f"{NO_ACCESSIBLE_RUN_IMAGE} (tried: {', '.join(names)})")
        return _without_digest(chosen)

    def _exists(self, reference: str) -> bool:
        try:
            return self.store.exists(reference)
        except LifecycleError:
            return False

    def _new_base(self, reference: str) -> StoredImage:
        try:
            image = self.store.find(reference)
        except ImageError as exc:
            raise LifecycleError(f"failed to access run image: {exc}", ExitCode.REBASE) from None
        if image is None:
            raise InputError(f"the run-image could not be found {self.store.where_missing(reference)}")
        return image

    # ---- checks ---------------------------------------------------------------------------
    def _validate(self, app: StoredImage, new_base: StoredImage) -> None:
        env = app.config.config.Env or []
        api_text = cfg.env_value(env, "CNB_PLATFORM_API") or ""
        try:
            legacy = not api_text or ApiVersion.parse(api_text) < ApiVersion(0, 12)
        except ValueError:
            raise _fail(f"failed to get app image platform API: invalid version '{api_text}'") from None
        if legacy:
            _validate_stack(app, new_base)
            return
        if app.config.labels.get(REBASABLE_LABEL) == "false":
            if not self.inputs.force:
                raise _fail(f"{NOT_REBASABLE}; {FORCE_HINT}")
            self.log.warning(NOT_REBASABLE)
        new_target, app_target = target_of(new_base), target_of(app)
        if not target_satisfied(new_target, app_target):
            message = TARGET_MISMATCH.format(new=_json(new_target), old=_json(app_target))
            if not self.inputs.force:
                raise _fail(f"{message}; {FORCE_HINT}")
            self.log.warning(message)

    def _updated_label(self, label: dict[str, Any], new_base: StoredImage, run_ref: str) -> dict[str, Any]:
        out = json.loads(json.dumps(label))  # a deep copy; key order kept
        run_md = out.get("runImage")
        if not isinstance(run_md, dict):
            run_md = {}
        run_md["topLayer"] = new_base.diff_ids[-1]
        run_md["reference"] = new_base.identifier
        out["runImage"] = run_md
        if not self._names_contain(out, new_base, run_ref):
            if run_md.get("image"):
                existing = _json(run_md)
            elif isinstance(_get(out, "stack", "runImage"), dict):
                existing = _json(out["stack"]["runImage"])
            else:
                existing = "not found"
            message = NAME_MISMATCH.format(name=run_ref, existing=existing)
            if not self.inputs.force:
                raise _fail(f"{message}; {FORCE_HINT}")
            self.log.warning(message)
            run_md["image"] = run_ref
            run_md.pop("mirrors", None)
            out["stack"] = {"runImage": {"image": run_ref}}
        return out  # type: ignore[no-any-return]

    def _names_contain(self, label: dict[str, Any], new_base: StoredImage, run_ref: str) -> bool:
        """Whether the run image metadata names the new run image (digests ignored): for layouts,
        whether a recorded name resolves to the new run image's directory."""
        names = [*run_image_names(label.get("runImage")), *run_image_names(_get(label, "stack", "runImage"))]
        for name in names:
            try:
                if self.store.names_image(name, str(new_base.path)):
                    return True
            except LifecycleError:
                continue
        wanted = _plain_name(run_ref)
        return any(_plain_name(n) == wanted for n in names)

    # ---- save -----------------------------------------------------------------------------
    def _save(self, app: StoredImage, new_base: StoredImage, config: dict[str, Any],
              base_layers: list[m.Descriptor], app_layers: list[m.Descriptor]) -> ExportResult:
        """Only a new config and manifest: every layer blob is linked (layouts) or mounted (registries)."""
        inputs = self.inputs
        base_count = len(app.diff_ids) - len(app_layers)
        parts = [*(Part(oci_layer(d), diff, new_base) for d, diff in zip(base_layers, new_base.diff_ids, strict=True)),
                 *(Part(oci_layer(d), diff, app) for d, diff in zip(app_layers, app.diff_ids[base_count:],
                                                                   strict=True))]
        draft = Draft(config=config, parts=tuple(parts), annotations={m.REF_NAME: ref_name(inputs.output_image)})
        with self.store.staging(inputs.output_image) as staging:
            return save_image(self.store, staging, draft, [inputs.output_image, *inputs.tags], self.log)


# ---- pure helpers ---------------------------------------------------------------------------
def rebased_config(app: StoredImage, new_base: StoredImage, base_count: int,
                   label: dict[str, Any]) -> dict[str, Any]:
    """The rebased image's config: the app's, on ``new_base``'s layers (the app's first
    ``base_count`` layers are its old run image's)."""
    config = app.config.dump()
    base_config = new_base.config
    config["os"] = base_config.os
    config["architecture"] = base_config.architecture
    for key, value in (("variant", base_config.variant), ("os.version", base_config.os_version)):
        if value:
            config[key] = value
        else:
            config.pop(key, None)
    created = app.config.created
    config["history"] = [*cfg.run_history(new_base, created), *_history_above(app, base_count)]
    config["rootfs"] = {"type": "layers", "diff_ids": [*new_base.diff_ids, *app.diff_ids[base_count:]]}
    container = config.setdefault("config", {})
    labels = {k: v for k, v in (container.get("Labels") or {}).items() if not k.startswith(SYNCED_PREFIXES)}
    labels.update({k: v for k, v in base_config.labels.items() if k.startswith(SYNCED_PREFIXES)})
    labels[cfg.LIFECYCLE_LABEL] = cfg.compact_json(label)
    container["Labels"] = labels
    return config


def _history_above(app: StoredImage, base_count: int) -> list[dict[str, Any]]:
    """The app's history entries for its layers above the old run image (and any empty-layer
    entries among them); blank entries when its history does not line up with its layers."""
    history = app.config.history or []
    layer_count = len(app.diff_ids)
    if sum(1 for h in history if not h.empty_layer) != layer_count:
        blank = {"created": app.config.created} if app.config.created else {}
        return [dict(blank) for _ in range(layer_count - base_count)]
    rows: list[dict[str, Any]] = []
    seen = 0
    for entry in history:
        if not entry.empty_layer:
            seen += 1
        if seen > base_count:
            rows.append(entry.dump())
    return rows


def _base_layer_count(app: StoredImage, label: dict[str, Any]) -> int:
    """How many of the app's bottom layers are its old run image's: up to ``runImage.topLayer``."""
    top = _get(label, "runImage", "topLayer")
    if not isinstance(top, str) or not top:
        raise _fail(f"rebase app image: could not find base layer in image: the app image has no "
                    f"runImage.topLayer in its '{cfg.LIFECYCLE_LABEL}' label")
    try:
        return app.diff_ids.index(top) + 1
    except ValueError:
        raise _fail(f"rebase app image: could not find base layer in image: the old run image's top layer "
                    f"{top} is not one of the app image's layers") from None


def target_of(image: StoredImage) -> dict[str, Any]:
    """Upstream's ``TargetMetadata`` of an image (JSON field order and omissions kept)."""
    labels = image.config.labels
    out: dict[str, Any] = {}
    if "io.buildpacks.base.id" in labels:
        out["id"] = labels["io.buildpacks.base.id"]
    out["os"] = image.config.os
    out["arch"] = image.config.architecture
    if image.config.variant:
        out["arch-variant"] = image.config.variant
    name = labels.get("io.buildpacks.base.distro.name")
    version = labels.get("io.buildpacks.base.distro.version")
    if name is not None or version is not None:
        out["distro"] = {"name": name or "", "version": version or ""}
    return out


def target_satisfied(new: dict[str, Any], app: dict[str, Any]) -> bool:
    """Upstream's ``TargetSatisfiedForRebase``: os and arch equal; a variant or distro field that
    either side leaves empty is a wildcard; a new run image with a distro needs the app to have one."""
    if new["os"] != app["os"] or new["arch"] != app["arch"]:
        return False
    variant_new, variant_app = new.get("arch-variant", ""), app.get("arch-variant", "")
    if variant_new and variant_app and variant_new != variant_app:
        return False
    distro = new.get("distro")
    if distro is not None:
        app_distro = app.get("distro")
        if app_distro is None:
            return False
        for key in ("name", "version"):
            if distro[key] and distro[key] != app_distro[key]:
                return False
    return True


def _validate_stack(app: StoredImage, new_base: StoredImage) -> None:
    """Platform API < 0.12 apps: same ``io.buildpacks.stack.id``, and every app mixin in the new run image."""
    app_stack = app.config.labels.get(STACK_ID_LABEL, "")
    new_stack = new_base.config.labels.get(STACK_ID_LABEL, "")
    if not app_stack:
        raise _fail("stack not defined on app image")
    if not new_stack:
        raise _fail("stack not defined on new base image")
    if app_stack != new_stack:
        raise _fail(f"incompatible stack: '{new_stack}' is not compatible with '{app_stack}'")
    app_mixins = _mixins(app, "app image")
    new_mixins = _mixins(new_base, "run image")
    missing = sorted(set(app_mixins) - set(new_mixins))
    if missing:
        raise _fail(f"missing required mixin(s): {', '.join(missing)}")


def _mixins(image: StoredImage, what: str) -> list[str]:
    raw = image.config.labels.get(MIXINS_LABEL)
    if not raw:
        return []
    try:
        value = m.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"get {what} mixins: label '{MIXINS_LABEL}' is not a JSON list of strings")
    return [v.split(":", 1)[1] if ":" in v else v for v in value]


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _without_digest(reference: str) -> str:
    """A recorded ``<name>@<digest>`` (or ``<path>@<digest>``) names the image it was built on; the
    rebaser wants what that name holds now."""
    name, sep, digest = reference.rpartition("@")
    return name if sep and refs.valid_digest(digest) else reference


def _plain_name(reference: str) -> str:
    """Upstream's ``ParseMaybe``: the normalised name with its tag, digest dropped."""
    try:
        return str(refs.parse(_without_digest(reference)))
    except refs.ReferenceError:
        return reference


def _json(data: Any) -> str:
    return cfg.compact_json(data)
