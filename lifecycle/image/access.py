"""Whether a phase can use an image: run-image mirror selection and registry access checks.

Mirror selection (``run.toml``): among the first ``[[images]]`` entry's ``image`` and ``mirrors``,
the first accessible one on the output image's registry, else the first accessible one, as
upstream's best-mirror rule. Accessible means the image is there to read: in a layout under the
layout root, in the Docker daemon, or a readable manifest in its registry.

Registry access checks (registry mode, before any build work, as upstream's analyzer): the run
and previous images must be readable (a missing image is fine, a refused one is not), and the
output image, every tag and a registry cache image must be writable: a blob upload is started and
cancelled, as ``go-containerregistry``'s ``CheckPushPermission`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from lifecycle.errors import ExitCode, ImageError, LifecycleError
from lifecycle.image import ref as refs

if TYPE_CHECKING:
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.registry import RegistryStore
    from lifecycle.image.store import LayoutStore

    Store = LayoutStore | RegistryStore | DaemonStore

NO_ACCESSIBLE_RUN_IMAGE = "failed to find accessible run image"


def accessible(store: Store, reference: str) -> bool:
    """Whether ``reference`` is there to read in ``store`` (errors count as not accessible)."""
    from lifecycle.image.store import LayoutStore

    try:
        if isinstance(store, LayoutStore):
            return store.resolver.locate(reference) is not None
        if store.kind == "registry":
            from lifecycle.image.registry import RegistryStore

            assert isinstance(store, RegistryStore)
            ref = refs.parse(reference)
            return store.client(ref.registry).get_manifest(ref.repository, ref.identifier) is not None
        return store.find(reference) is not None
    except (LifecycleError, refs.ReferenceError):
        return False


def registry_of(reference: str) -> str:
    """The registry a reference names ("" for paths and unparsable text)."""
    if reference.startswith("/"):
        return ""
    try:
        return refs.parse(reference).registry
    except refs.ReferenceError:
        return ""


def run_image_names(entry: object) -> list[str]:
    """A run-image entry's ``image``, then its ``mirrors`` (``run.toml``'s ``[[images]]``, the
    lifecycle label's ``runImage``): strings only, empty ones left out."""
    if not isinstance(entry, dict):
        return []
    mirrors = entry.get("mirrors")
    names = [entry.get("image"), *(mirrors if isinstance(mirrors, list) else [])]
    return [n for n in names if isinstance(n, str) and n]


def best_mirror(names: Sequence[str], target_registry: str, ok: Callable[[str], bool]) -> str | None:
    """Upstream's best-mirror rule: the first name on ``target_registry`` that is ``ok``, else the
    first other one that is (each name checked once)."""
    checked: dict[str, bool] = {}

    def check(name: str) -> bool:
        if name not in checked:
            checked[name] = ok(name)
        return checked[name]

    same = [n for n in names if target_registry and registry_of(n) == target_registry]
    for name in [*same, *(n for n in names if n not in same)]:
        if check(name):
            return name
    return None


def select_run_image(entry: dict[str, object], output_image: str, store: Store) -> str:
    """The run image to use from one ``run.toml`` ``[[images]]`` entry (exit 3 when none is
    accessible, with upstream's message and the names tried)."""
    from lifecycle.errors import InputError

    names = run_image_names(entry)
    chosen = best_mirror(names, registry_of(output_image), lambda name: accessible(store, name))
    if chosen is None:
        raise InputError(f"{NO_ACCESSIBLE_RUN_IMAGE} (tried: {', '.join(names)})")
    return chosen


def _check_read(store: RegistryStore, reference: str) -> None:
    from lifecycle.image.registry import RegistryError

    ref = refs.parse(reference)
    try:
        store.client(ref.registry).get_manifest(ref.repository, ref.identifier)
    except RegistryError as exc:
        # Upstream counts anything but 401/403 as readable (a missing image is still readable).
        if exc.status in (401, 403) or not exc.status:
            raise
    except ImageError:
        pass


def _check_write(store: RegistryStore, reference: str) -> None:
    _check_read(store, reference)
    ref = refs.parse(reference)
    client = store.client(ref.registry)
    location = client.start_upload(ref.repository)
    client.cancel_upload(ref.repository, location)


def ensure_store_access(store: Store, *, read: Iterable[str] = (), write: Iterable[str] = ()) -> bool:
    """Run :func:`ensure_registry_access` when ``store`` is a registry store; answer whether it was one.
    Layouts and the daemon need no up-front check (their images are read or written in place)."""
    if store.kind != "registry":
        return False
    from lifecycle.image.registry import RegistryStore

    assert isinstance(store, RegistryStore)
    ensure_registry_access(store, read=read, write=write)
    return True


def ensure_registry_access(store: RegistryStore, *, read: Iterable[str] = (), write: Iterable[str] = ()
                           ) -> None:
    """Upstream's analyzer checks: every ``read`` image readable, every ``write`` image writable.
    Failures exit 32 with upstream's message (``failed to ensure registry read/write access to``)."""
    for reference in dict.fromkeys(r for r in read if r):
        try:
            _check_read(store, reference)
        except ImageError as exc:
            raise LifecycleError(f"failed to initialize analyzer: validating registry read access: failed to "
                                 f"ensure registry read access to {reference}: {exc}", ExitCode.ANALYZE) from None
    for reference in dict.fromkeys(w for w in write if w):
        try:
            _check_write(store, reference)
        except ImageError as exc:
            raise LifecycleError(f"failed to initialize analyzer: validating registry write access: failed to "
                                 f"ensure registry read/write access to {reference}: {exc}",
                                 ExitCode.ANALYZE) from None
