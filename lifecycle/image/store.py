"""Image stores: where phases find and put images (OCI layouts, a registry, a Docker daemon).

Writing is the store's too: a phase assembles an image (a :class:`~lifecycle.image.draft.Draft`)
in the layout :meth:`~ImageStore.staging` hands out, then :meth:`~ImageStore.save` puts it under
its names. A layout store stages in the output's own directory and tags it (and copies it to each
other name); a registry store stages in a temporary layout and pushes it (mounting what the
registry has elsewhere); a daemon store stages in a temporary layout and loads it.

A store's ``find(reference)`` returns a :class:`StoredImage` (a layout
:class:`~lifecycle.image.layout.Image`, a :class:`~lifecycle.image.registry.RegistryImage` or a
:class:`~lifecycle.image.daemon.DaemonImage`) or None when the image does not exist; malformed
content and unreachable registries or daemons raise :class:`~lifecycle.errors.ImageError`.
``lifecycle.image.registry`` and ``lifecycle.image.daemon`` are imported only when their mode is
chosen (so ``-oci`` never imports ``docker`` or ``httpx``).
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, TypeVar

from lifecycle.errors import ImageError, InputError
from lifecycle.image import model as m
from lifecycle.image.layout import BlobWriter, Image, Layout
from lifecycle.image.resolver import Location, Resolver, split_identifier

if TYPE_CHECKING:
    from lifecycle.image.auth import Keychain
    from lifecycle.image.daemon import DaemonStore
    from lifecycle.image.draft import Draft
    from lifecycle.image.referrers import Artifact
    from lifecycle.image.registry import RegistryStore
    from lifecycle.priv.daemon import DaemonSockets

STAGING_TAG = "export"
Announce = Callable[[str], None]


class StoredImage(Protocol):
    """What every store's images offer (layout, registry, daemon)."""

    @property
    def identifier(self) -> str:
        """Layout: ``<path>@<digest>``; registry: ``<registry>/<repo>@<digest>``; daemon: image ID."""
        ...

    @property
    def path(self) -> str | os.PathLike[str]:
        """Layout: the directory; registry and daemon: the reference as given."""
        ...

    @property
    def config(self) -> m.ImageConfig:
        """The image config."""
        ...

    @property
    def manifest(self) -> m.Manifest | None:
        """The manifest (None for daemon images: the daemon keeps none)."""
        ...

    @property
    def manifest_digest(self) -> str:
        """The manifest's digest ("" for daemon images)."""
        ...

    @property
    def diff_ids(self) -> list[str]:
        """The layers' diffIDs."""
        ...


class LayerRef(Protocol):
    """A layer of an image being saved, as :meth:`Staging.lacking` sees it."""

    @property
    def diff_id(self) -> str:
        """The uncompressed tar's digest."""
        ...

    @property
    def digest(self) -> str:
        """The blob the manifest names."""
        ...


L = TypeVar("L", bound=LayerRef)


class Staging:
    """The layout an image is assembled in before its store saves it."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def blob_writer(self) -> BlobWriter:
        """A writer for a new layer blob in the layout (a registry store's also starts uploading a
        large blob while it is written)."""
        return self.layout.blob_writer()

    def blob_added(self, desc: m.Descriptor) -> None:
        """A layer blob is complete in the layout (a registry store may start uploading it)."""

    def lacking(self, layers: Sequence[L], have: Iterable[StoredImage | None]) -> list[L]:
        """The layers (all of the image, in order) whose bytes the save needs and the staging
        layout does not hold, given the images the store already ``have``. None here: a layout
        store links base and reused blobs, a registry store mounts or skips them; a daemon store
        says otherwise."""
        return []


@dataclass
class Saved:
    """What a store saved: the manifest, where it is now, and the image ID (daemons)."""

    digest: str
    manifest_size: int
    names: list[str]  # layout paths, or the references pushed / loaded
    image_id: str = ""
    registry_digest: str = ""  # the digest the image has in a registry (upstream prints it)


class ImageStore(Protocol):
    """What phases need to read and save images."""

    kind: str

    def find(self, reference: str) -> StoredImage | None:
        """The image, or None when it does not exist."""
        ...

    def exists(self, reference: str) -> bool:
        """Whether ``reference`` names an image (cheaply where the store can)."""
        ...

    def describe(self, reference: str) -> str:
        """Where ``reference`` was looked for (for "not found" messages)."""
        ...

    def where(self, reference: str) -> str:
        """The one place ``reference`` would be (for info lines)."""
        ...

    def where_missing(self, reference: str) -> str:
        """``at path: …``, ``in the registry: …`` or ``in the Docker daemon: …`` (not-found messages)."""
        ...

    def names_image(self, name: str, location: str, *, first_found: bool = False) -> bool | None:
        """Whether ``name`` resolves to the image at ``location`` (a layout path or a recorded
        ``<path>@<digest>``; with ``first_found``, only where ``find`` would look first); None when
        the store has no locations apart from names (compare the names instead)."""
        ...

    def staging(self, reference: str, parent: Path | None = None) -> contextlib.AbstractContextManager[Staging]:
        """Where to assemble the image to be saved as ``reference`` (temporary ones under ``parent``)."""
        ...

    def save(self, staging: Staging, draft: Draft, names: Sequence[str], announce: Announce) -> Saved:
        """Write ``draft`` into ``staging`` and save it under each of ``names`` (calling ``announce``
        with where before each)."""
        ...

    def open_layer(self, image: StoredImage, diff_id: str, scratch: Path
                   ) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Layer ``diff_id`` of ``image`` (one of this store's) as an uncompressed tar stream, its
        bytes not yet verified; an ImageError saying why when they cannot be had (a sparse layout,
        a daemon that does not hand the layer out). Temporary files go under ``scratch``."""
        ...

    def layer_files(self, image: StoredImage, diff_ids: set[str], scratch: Path) -> dict[str, Path]:
        """Layers ``diff_ids`` of ``image`` as uncompressed tar files under ``scratch`` (diffID ->
        file; a layer whose bytes cannot be had is left out), not yet verified."""
        ...

    def attach(self, staging: Staging, saved: Saved, artifacts: Sequence[Artifact], announce: Announce) -> None:
        """Save ``artifacts`` (OCI 1.1 artifacts whose ``subject`` is the saved image) wherever
        ``saved`` put the image (calling ``announce`` with each artifact's place)."""
        ...


class LayoutStore:
    """Images as OCI layout directories under one root, found through the shared resolver."""

    kind = "layout"

    def __init__(self, root: Path) -> None:
        self.resolver = Resolver(root)

    @property
    def root(self) -> Path:
        """The layout root (``-oci-dir``)."""
        return self.resolver.root

    def find(self, reference: str) -> Image | None:
        """Locate and load ``reference``; None when no candidate directory has a layout."""
        loc = self.resolver.locate(reference)
        if loc is None:
            return None
        return self.load(loc)

    def load(self, loc: Location) -> Image:
        """Load the image at a resolved location."""
        layout = Layout(loc.path)
        try:
            return layout.image(tag=loc.tag, digest=loc.digest)
        except ImageError as exc:
            raise ImageError(f"invalid image layout at {loc.path}: {exc}") from None

    def exists(self, reference: str) -> bool:
        """Whether a candidate directory holds a layout (nothing is loaded)."""
        return self.resolver.locate(reference) is not None

    def describe(self, reference: str) -> str:
        """The first candidate path, then the others tried."""
        tried = self.resolver.tried(reference)
        return tried[0] + (f" (also tried: {', '.join(tried[1:])})" if len(tried) > 1 else "")

    def where(self, reference: str) -> str:
        """The canonical path of ``reference``."""
        return str(self.resolver.canonical(reference).path)

    def where_missing(self, reference: str) -> str:
        """``at path: <paths tried>``."""
        return f"at path: {self.describe(reference)}"

    def names_image(self, name: str, location: str, *, first_found: bool = False) -> bool | None:
        """Whether one of ``name``'s candidate directories (with ``first_found``: the one it is
        found in) is the layout at ``location``."""
        target = split_identifier(location)[0]
        if first_found:
            found = self.resolver.locate(name)
            return found is not None and str(found.path) == target
        return any(loc.path == Path(target) for loc in self.resolver.candidates(name))

    def output_path(self, reference: str) -> Path:
        """Where ``reference`` is written (always the canonical path)."""
        return self.resolver.canonical(reference).path

    @contextlib.contextmanager
    def staging(self, reference: str, parent: Path | None = None) -> Iterator[Staging]:
        """The output's own directory: blobs land where they stay; ``index.json`` changes last. A
        failed export takes back the blobs and directories it added (spec/trust-model.md)."""
        layout = Layout(self.output_path(reference))
        try:
            yield Staging(layout)
        except BaseException:
            layout.discard_created()
            raise

    def save(self, staging: Staging, draft: Draft, names: Sequence[str], announce: Announce) -> Saved:
        """Tag the image in the staging layout under the first name, then copy it (hard links) to
        each other name's directory and tag it there."""
        from lifecycle.image.parts import ref_name

        out = staging.layout
        written = draft.write(out)
        announce(str(out.path))
        out.set_tag(written.manifest, ref_name(names[0]))
        paths = [str(out.path)]
        for extra in names[1:]:
            path = self.output_path(extra)
            copy = Layout(path)
            copy.init()
            for desc in [*draft.layers, written.config, written.manifest]:
                copy.add_blob_from(out.blob_path(desc.digest), desc)
            announce(str(path))
            copy.set_tag(written.manifest, ref_name(extra))
            paths.append(str(path))
        return Saved(written.manifest.digest, written.manifest.size, paths)

    def attach(self, staging: Staging, saved: Saved, artifacts: Sequence[Artifact], announce: Announce) -> None:
        """List ``artifacts`` in the ``index.json`` of each layout the image was saved in, untagged
        beside the tags (kept when a tag is saved again, as notation's signatures are)."""
        from lifecycle.image.referrers import attach_in_layout

        for path in saved.names:
            for desc in attach_in_layout(Layout(Path(path)), artifacts):
                announce(f"{path}@{desc.digest}")

    @contextlib.contextmanager
    def open_layer(self, image: StoredImage, diff_id: str, scratch: Path) -> Iterator[IO[bytes]]:
        """The layer's blob in the image's layout, gunzipped while read."""
        if not isinstance(image, Image):
            raise ImageError("its layers cannot be read here")
        desc = image.manifest.layers[image.diff_ids.index(diff_id)]
        if not image.layout.has_blob(desc.digest):
            raise ImageError(f"its layer {desc.digest} is not in the layout")
        with image.layout.open_blob(desc) as raw:
            yield gunzipped(raw, desc)

    def layer_files(self, image: StoredImage, diff_ids: set[str], scratch: Path) -> dict[str, Path]:
        """Each layer written out from its blob."""
        return layer_files_from(self, image, diff_ids, scratch)


def gunzipped(raw: IO[bytes], desc: m.Descriptor) -> IO[bytes]:
    """``raw`` uncompressed while read when ``desc`` is a gzip layer (or says nothing)."""
    gz = desc.mediaType.endswith("gzip") or desc.mediaType == ""
    return gzip.GzipFile(fileobj=raw) if gz else raw  # type: ignore[return-value]


def layer_files_from(store: ImageStore, image: StoredImage, diff_ids: set[str], scratch: Path) -> dict[str, Path]:
    """:meth:`ImageStore.layer_files` by :meth:`ImageStore.open_layer`, one layer at a time."""
    found: dict[str, Path] = {}
    for diff_id in sorted(diff_ids & set(image.diff_ids)):
        target = scratch / (diff_id.replace(":", "-") + ".tar")
        try:
            with store.open_layer(image, diff_id, scratch) as src, open(target, "wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    out.write(chunk)
        except (ImageError, OSError, EOFError):
            with contextlib.suppress(OSError):
                target.unlink()
            continue
        found[diff_id] = target
    return found


@contextlib.contextmanager
def temporary_staging(parent: Path | None, prefix: str) -> Iterator[Staging]:
    """A staging layout in a new temporary directory (removed afterwards)."""
    import shutil
    import tempfile

    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield Staging(Layout(path))
    finally:
        shutil.rmtree(path, ignore_errors=True)


def open_store(*, oci: bool, daemon: bool, oci_dir: str, insecure_registries: Sequence[str] = (),
               environ: Mapping[str, str] | None = None, keychain: Keychain | None = None,
               registry_timeout: int = 30, registry_deadline: int = 300,
               daemon_sockets: DaemonSockets | None = None) -> LayoutStore | RegistryStore | DaemonStore:
    """Pick exactly one store, as upstream's ``image.NewHandler`` does (decisions D1, D6).

    ``-oci``: layouts under ``oci_dir``; ``-daemon``: the Docker daemon at ``DOCKER_HOST`` (over
    ``daemon_sockets``, connections opened as root before the drop, when given);
    neither: registries (HTTPS, except ``insecure_registries`` over HTTP; credentials from
    ``CNB_REGISTRY_AUTH`` and the Docker config named by ``environ``, unless ``keychain`` is given:
    the CLI reads it as root before dropping privileges; ``registry_timeout`` and
    ``registry_deadline`` seconds bound every registry operation; proxies from ``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` in ``environ``). Both: exit 3.
    """
    env = dict(environ if environ is not None else {})
    if oci and daemon:
        raise InputError("exporting to multiple targets is unsupported")
    if daemon:
        from lifecycle.image.daemon import DaemonStore

        return DaemonStore(env.get("DOCKER_HOST", ""), daemon_sockets)
    if not oci:
        return registry_store(insecure_registries, env, keychain, registry_timeout=registry_timeout,
                              registry_deadline=registry_deadline)
    return layout_store(oci_dir)


def layout_store(oci_dir: str) -> LayoutStore:
    """Layouts under ``oci_dir`` (``-oci``); an empty ``oci_dir`` is an input error."""
    if not oci_dir:
        raise InputError("defining a layout directory is required when OCI feature is enabled. Use "
                         "-oci-dir flag or CNB_OCI_PATH environment variable")
    return LayoutStore(Path(oci_dir))


def registry_store(insecure_registries: Sequence[str] = (), environ: Mapping[str, str] | None = None,
                   keychain: Keychain | None = None, *, registry_timeout: int = 30,
                   registry_deadline: int = 300) -> RegistryStore:
    """Registries (imports ``httpx`` only now): HTTPS except ``insecure_registries``; credentials
    from ``keychain``, else from ``CNB_REGISTRY_AUTH`` and the Docker config named by ``environ``;
    every operation bounded by ``registry_timeout`` (idle) and ``registry_deadline`` seconds; proxies
    from ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` in ``environ``."""
    from lifecycle.image import auth
    from lifecycle.image.registry import Limits, Proxies, RegistryStore

    for name, value in (("CNB_REGISTRY_TIMEOUT", registry_timeout), ("CNB_REGISTRY_DEADLINE", registry_deadline)):
        if value < 1:
            raise InputError(f"{name} must be a whole number of seconds, at least 1 (got {value})")
    env = dict(environ or {})
    return RegistryStore(insecure_registries=insecure_registries,
                         keychain=keychain or auth.Keychain.from_environ(env),
                         limits=Limits(idle=float(registry_timeout), deadline=float(registry_deadline)),
                         proxies=Proxies.from_environ(env))
