"""Images in an OCI distribution registry: reading them, and pushing images kept in OCI layouts.

Reading (:class:`RegistryStore`): manifests by tag or digest (OCI and Docker v2s2; an index or
manifest list is followed to the manifest for :func:`~lifecycle.image.layout.host_platform`) and
config blobs, as :class:`RegistryImage`. Writing: :func:`push_layout_image` publishes an image kept
in an OCI layout, uploading only what the registry lacks (mounting from other repositories when it
can). The HTTP side (transport, auth, retries, uploads) is :mod:`lifecycle.image.registry_client`;
its public names are re-exported here for existing callers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image import ref as refs
from lifecycle.image.auth import Keychain, normalize_registry
from lifecycle.image.layout import BlobWriter, Layout, host_platform
from lifecycle.image.referrers import Artifact, fallback_tag, with_referrer, write_artifact
from lifecycle.image.registry_client import (
    ATTEMPTS,
    Limits,
    Proxies,
    RegistryClient,
    RegistryError,
    insecure_set,
    parse_challenge,
    sha256_digest,
)
from lifecycle.image.registry_stream import BlobStream, StreamingWriter
from lifecycle.image.store import (
    STAGING_TAG,
    Announce,
    Saved,
    Staging,
    StoredImage,
    gunzipped,
    layer_files_from,
    temporary_staging,
)
from lifecycle.image.untrusted import clean

if TYPE_CHECKING:
    from lifecycle.image.draft import Draft

__all__ = [
    "ATTEMPTS",
    "Limits",
    "Proxies",
    "RegistryClient",
    "RegistryError",
    "RegistryImage",
    "RegistryStore",
    "insecure_set",
    "parse_challenge",
    "push_layout_image",
    "sha256_digest",
]


@dataclass
class RegistryImage:
    """An image read from a registry; offers what phases use from a layout ``Image``."""

    path: str
    ref: refs.ImageRef
    manifest_digest: str
    manifest_size: int
    manifest_bytes: bytes
    manifest: m.Manifest
    config: m.ImageConfig
    config_bytes: bytes
    media_type: str
    missing: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The reference as given."""
        return self.path

    @property
    def repository(self) -> str:
        """``<registry>/<repository>`` (fully qualified)."""
        return self.ref.name

    @property
    def identifier(self) -> str:
        """``<registry>/<repository>@<manifest digest>``, as upstream records registry images."""
        return f"{self.ref.name}@{self.manifest_digest}"

    @property
    def diff_ids(self) -> list[str]:
        """The layers' diffIDs from the config."""
        return list(self.config.rootfs.diff_ids)

    def has_layer_blob(self, digest: str) -> bool:
        """Registry layers are never local."""
        return False


_parse_model = m.parse_blob


def _pick_platform(index: m.Index, where: str) -> m.Descriptor:
    want = host_platform()
    descs = [d for d in index.manifests if d.mediaType in m.MANIFEST_TYPES | {""}]
    matching = [d for d in descs if d.platform is not None and d.platform.os == want.os
                and d.platform.architecture == want.architecture]
    if not matching and len(descs) == 1 and descs[0].platform is None:
        matching = descs
    if not matching:
        found = clean(", ".join(f"{d.platform.os}/{d.platform.architecture}" for d in descs if d.platform))
        raise ImageError(f"no manifest for platform {want.os}/{want.architecture} in {where}"
                         + (f" (found: {found})" if found else ""))
    return matching[0]


class RegistryStore:
    """Images in registries, named by references (``host[:port]/repo[:tag|@digest]``)."""

    kind = "registry"

    def __init__(self, *, insecure_registries: Sequence[str] = (), keychain: Keychain | None = None,
                 transport: httpx.BaseTransport | None = None, limits: Limits | None = None,
                 proxies: Proxies | None = None) -> None:
        self.insecure = insecure_set(insecure_registries)
        self.keychain = keychain or Keychain()
        self.limits = limits or Limits()
        self.proxies = proxies or Proxies()
        self._transport = transport
        self._clients: dict[str, RegistryClient] = {}

    def client(self, registry: str) -> RegistryClient:
        """The (cached) client for ``registry``."""
        key = normalize_registry(registry)
        if key not in self._clients:
            self._clients[key] = RegistryClient(registry, insecure=key in self.insecure,
                                                keychain=self.keychain, transport=self._transport,
                                                limits=self.limits, proxies=self.proxies)
        return self._clients[key]

    def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    @staticmethod
    def parse(reference: str) -> refs.ImageRef:
        """Parse a reference; bad ones are image errors naming the reference."""
        try:
            return refs.parse(reference)
        except refs.ReferenceError as exc:
            raise ImageError(str(exc)) from None

    def find(self, reference: str) -> RegistryImage | None:
        """Read ``reference``'s manifest and config; None when the registry says it is unknown."""
        ref = self.parse(reference)
        client = self.client(ref.registry)
        try:
            got = client.get_manifest(ref.repository, ref.identifier)
        except RegistryError as exc:
            if exc.status == 404 or {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"} & set(exc.codes):
                return None
            raise
        if got is None:
            return None
        data, media = got
        where = f"{ref.name}@{sha256_digest(data)}"
        raw: dict[str, Any] = _parse_model(_AnyJSON, data, f"manifest {where}")
        media = str(raw.get("mediaType") or media)
        if raw.get("schemaVersion") == 1:
            raise ImageError(f"{reference}: Docker schema 1 manifests are not supported")
        if media in m.INDEX_TYPES or (not media and "manifests" in raw):
            index = _parse_model(m.Index, data, f"index {where}")
            desc = _pick_platform(index, f"{reference} (index {sha256_digest(data)})")
            got = client.get_manifest(ref.repository, desc.digest)
            if got is None:
                raise ImageError(f"manifest {desc.digest} listed by {reference} is missing")
            data, media = got
            raw = _parse_model(_AnyJSON, data, f"manifest {ref.name}@{desc.digest}")
            media = str(raw.get("mediaType") or media)
        digest = sha256_digest(data)
        if media and media not in m.MANIFEST_TYPES:
            raise ImageError(f"{reference}: unsupported manifest media type {clean(media, 200)}")
        manifest: m.Manifest = _parse_model(m.Manifest, data, f"manifest {ref.name}@{digest}")
        config_bytes = client.get_blob(ref.repository, manifest.config.digest, size=manifest.config.size)
        config: m.ImageConfig = _parse_model(m.ImageConfig, config_bytes, f"config {manifest.config.digest}")
        if len(config.rootfs.diff_ids) != len(manifest.layers):
            raise ImageError(f"manifest {digest} lists {len(manifest.layers)} layers but its config has "
                             f"{len(config.rootfs.diff_ids)} diff_ids")
        return RegistryImage(path=reference, ref=ref, manifest_digest=digest, manifest_size=len(data),
                             manifest_bytes=data, manifest=manifest, config=config, config_bytes=config_bytes,
                             media_type=media or m.OCI_MANIFEST,
                             missing={layer.digest for layer in manifest.layers})

    def describe(self, reference: str) -> str:
        """The fully qualified reference."""
        try:
            return str(self.parse(reference))
        except ImageError:
            return reference

    def where(self, reference: str) -> str:
        """The reference as given (upstream logs the name as given)."""
        return reference

    def exists(self, reference: str) -> bool:
        """Whether the registry has ``reference``."""
        return self.find(reference) is not None

    def where_missing(self, reference: str) -> str:
        """``in the registry: <reference>``."""
        return f"in the registry: {self.describe(reference)}"

    def names_image(self, name: str, location: str, *, first_found: bool = False) -> bool | None:
        """Registries have no locations apart from names."""
        return None

    @contextlib.contextmanager
    def staging(self, reference: str, parent: Path | None = None) -> Iterator[Staging]:
        """A temporary sparse layout (base and reused layers stay in the registry) whose new layer
        blobs are pushed to ``reference``'s repository as soon as each is complete (a large one
        while it is written)."""
        with temporary_staging(parent, ".export-") as base:
            staging = _PushStaging(base.layout, self, reference)
            try:
                yield staging
            finally:
                staging.close()

    def save(self, staging: Staging, draft: Draft, names: Sequence[str], announce: Announce) -> Saved:
        """Push the image under each name: blobs the repository has are skipped, the draft's
        source images' are mounted, the rest uploaded from the staging layout."""
        written = draft.write(staging.layout)
        staging.layout.set_tag(written.manifest, STAGING_TAG)
        sources = [str(image.path) for image in draft.sources]
        for i, name in enumerate(names):
            announce(name)
            if i == 0 and isinstance(staging, _PushStaging):
                staging.wait()  # the layers pushed while they were built: done, or the first error
            self.push_layout_image(staging.layout.path, STAGING_TAG, name, mount_from=sources)
        digest = written.manifest.digest
        return Saved(digest, written.manifest.size, list(names), registry_digest=digest)

    @contextlib.contextmanager
    def open_layer(self, image: StoredImage, diff_id: str, scratch: Path) -> Iterator[IO[bytes]]:
        """The layer's blob streamed from the image's repository, gunzipped while read."""
        from lifecycle.image.daemon_layers import IterReader

        if not isinstance(image, RegistryImage):
            raise ImageError("its layers cannot be read here")
        desc = image.manifest.layers[image.diff_ids.index(diff_id)]
        chunks = self.client(image.ref.registry).stream_blob(image.ref.repository, desc.digest)
        with contextlib.closing(chunks):  # type: ignore[type-var]
            yield gunzipped(IterReader(chunks), desc)

    def layer_files(self, image: StoredImage, diff_ids: set[str], scratch: Path) -> dict[str, Path]:
        """Each layer downloaded from its blob."""
        return layer_files_from(self, image, diff_ids, scratch)

    def attach(self, staging: Staging, saved: Saved, artifacts: Sequence[Artifact], announce: Announce) -> None:
        """Push ``artifacts`` (referrers of the saved image) to the repository of each saved name:
        blobs, then the manifest by digest; a registry without the referrers API also gets the
        fallback tag ``sha256-<hex>`` listing them (:mod:`lifecycle.image.referrers`)."""
        for artifact in artifacts:
            write_artifact(staging.layout, artifact)
        for name in saved.names:
            ref = self.parse(name)
            client = self.client(ref.registry)
            pusher = _Pusher(self, staging.layout, name, ())
            indexed = []
            for artifact in artifacts:
                for blob in artifact.blobs:
                    pusher._ensure_blob(blob.descriptor)
                desc = artifact.descriptor
                announce(f"{ref.name}@{desc.digest}")
                if not client.put_referrer(ref.repository, artifact.manifest_bytes(), m.OCI_MANIFEST, saved.digest):
                    indexed.append(desc)
            if indexed:
                self._update_fallback(client, ref.repository, saved.digest, indexed)

    def _update_fallback(self, client: RegistryClient, repository: str, subject: str,
                         descs: list[m.Descriptor]) -> None:
        tag = fallback_tag(subject)
        got = client.get_manifest(repository, tag)
        index: m.Index | None = None
        if got is not None:
            raw = _parse_model(_AnyJSON, got[0], f"referrers index {repository}:{tag}")
            if (raw.get("mediaType") or got[1]) == m.OCI_INDEX:  # anything else under the tag is replaced
                index = _parse_model(m.Index, got[0], f"referrers index {repository}:{tag}")
        changed = False
        for desc in descs:
            updated = with_referrer(index, desc)
            if updated is not None:
                index, changed = updated, True
        if changed and index is not None:
            client.put_manifest(repository, tag, m.canonical_json(index.dump()), m.OCI_INDEX)

    def push_layout_image(self, layout_dir: Path, tag_in_layout: str, reference: str, *,
                          mount_from: Sequence[str] = ()) -> str:
        """Publish the image tagged ``tag_in_layout`` in ``layout_dir`` as ``reference``; see
        :func:`push_layout_image`."""
        return _Pusher(self, Layout(Path(layout_dir)), reference, mount_from).push(tag_in_layout)


class _AnyJSON:
    """``model_validate`` shim: accept any JSON object as a dict."""

    @staticmethod
    def model_validate(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise ImageError("manifest is not a JSON object")
        return raw


def push_layout_image(layout_dir: Path, tag_in_layout: str, reference: str, *, mount_from: list[str],
                      insecure_registries: Sequence[str] = (), keychain: Keychain | None = None) -> str:
    """Push the image tagged ``tag_in_layout`` in the OCI layout ``layout_dir`` to ``reference``.

    Blobs the target repository already has (``HEAD``) are skipped; missing ones are mounted from a
    repository in ``mount_from`` on the same registry when possible, else uploaded from the layout.
    A blob absent from a sparse layout must already be in the target repository or be mountable,
    else this fails naming the blob. Then the manifest is ``PUT`` under the reference's tag (or
    digest). Returns the manifest digest.
    """
    store = RegistryStore(insecure_registries=insecure_registries, keychain=keychain)
    try:
        return store.push_layout_image(layout_dir, tag_in_layout, reference, mount_from=mount_from)
    finally:
        store.close()


class _Pusher:
    def __init__(self, store: RegistryStore, layout: Layout, reference: str, mount_from: Sequence[str]) -> None:
        self.layout = layout
        self.ref = store.parse(reference)
        self.client = store.client(self.ref.registry)
        self.sources: list[str] = []
        for text in mount_from:
            src = store.parse(text)
            if normalize_registry(src.registry) == normalize_registry(self.ref.registry) \
                    and src.repository != self.ref.repository and src.repository not in self.sources:
                self.sources.append(src.repository)
        self.done: set[str] = set()

    def push(self, tag: str) -> str:
        if not self.layout.exists():
            raise ImageError(f"no OCI layout at {self.layout.path}")
        index = self.layout.read_index()
        desc = self._select(index, tag)
        data = self.layout.read_blob(desc)
        self._push_manifest_tree(desc, data, depth=0)
        target = self.ref.digest or self.ref.tag or refs.DEFAULT_TAG
        media = desc.mediaType or _media_of(data)
        return self.client.put_manifest(self.ref.repository, target, data, media)

    def _select(self, index: m.Index, tag: str) -> m.Descriptor:
        named = [d for d in index.manifests if d.ref_name is not None
                 and (d.ref_name == tag or d.ref_name.endswith(f":{tag}"))]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise ImageError(f"more than one manifest named '{tag}' in {self.layout.path}/index.json")
        if len(index.manifests) == 1 and index.manifests[0].ref_name is None:
            return index.manifests[0]
        raise ImageError(f"no manifest named '{tag}' in {self.layout.path}/index.json")

    def _push_manifest_tree(self, desc: m.Descriptor, data: bytes, depth: int) -> None:
        if depth > 4:
            raise ImageError(f"image indexes nested too deeply in {self.layout.path}")
        media = desc.mediaType or _media_of(data)
        if media in m.INDEX_TYPES:
            index = _parse_model(m.Index, data, f"index {desc.digest}")
            for child in index.manifests:
                child_data = self.layout.read_blob(child)
                self._push_manifest_tree(child, child_data, depth + 1)
                if child.digest not in self.done:
                    self.client.put_manifest(self.ref.repository, child.digest, child_data,
                                             child.mediaType or _media_of(child_data))
                    self.done.add(child.digest)
            return
        manifest: m.Manifest = _parse_model(m.Manifest, data, f"manifest {desc.digest}")
        for blob in [manifest.config, *manifest.layers]:
            self._ensure_blob(blob)

    def _ensure_blob(self, desc: m.Descriptor) -> None:
        if desc.digest in self.done:
            return
        repo = self.ref.repository
        if self.client.blob_exists(repo, desc.digest) is not None:
            self.done.add(desc.digest)
            return
        local = self.layout.has_blob(desc.digest)
        location: str | None = None
        for source in self.sources:
            location = self.client.mount_blob(repo, desc.digest, source)
            if location is None:
                self.done.add(desc.digest)
                return
            if local:
                break  # the registry opened an upload session instead: use it
            self.client.cancel_upload(repo, location)
            location = None
        if not local:
            tried = f" or mount it from {', '.join(self.sources)}" if self.sources else ""
            raise ImageError(f"blob {desc.digest} is missing from layout {self.layout.path}, and registry "
                             f"{self.ref.registry} does not have it in {repo}{tried}")
        path = self.layout.blob_path(desc.digest)
        self.client.upload_blob(repo, desc, lambda: open(path, "rb"), location=location)  # noqa: SIM115
        self.done.add(desc.digest)


class _PushStaging(Staging):
    """A staging layout whose new layer blobs are uploaded while later layers are still built:
    one upload at a time in a background thread, each blob streamed from its file; a large blob
    is uploaded while it is still written (:mod:`lifecycle.image.registry_stream`), in a thread of
    its own."""

    def __init__(self, layout: Layout, store: RegistryStore, reference: str) -> None:
        super().__init__(layout)
        self._pusher = _Pusher(store, layout, reference, ())
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
        # One thread per build worker at most streams at once; a stream mostly waits for its writer.
        self._stream_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stream")
        self._uploads: list[Future[None]] = []
        self._streams: list[tuple[BlobStream, Future[bool]]] = []
        self._lock = threading.Lock()

    def blob_writer(self) -> BlobWriter:
        """A writer that starts uploading its blob once it is large (see :mod:`registry_stream`)."""
        self.layout.init()
        return StreamingWriter(self.layout, self._start_stream)

    def _start_stream(self, fd: int) -> BlobStream:
        stream = BlobStream(self._pusher.client, self._pusher.ref.repository, fd)
        with self._lock:
            self._streams.append((stream, self._stream_pool.submit(stream.run)))
        return stream

    def blob_added(self, desc: m.Descriptor) -> None:
        """Start uploading the blob (the registry's answer to ``HEAD`` comes first); a streamed
        blob is only waited for, and uploaded the ordinary way if its stream failed."""
        with self._lock:
            streamed = next((future for stream, future in self._streams if stream.digest == desc.digest), None)
        if streamed is None:
            self._uploads.append(self._pool.submit(self._pusher._ensure_blob, desc))
        else:
            self._uploads.append(self._pool.submit(self._after_stream, streamed, desc))

    def _after_stream(self, streamed: Future[bool], desc: m.Descriptor) -> None:
        if streamed.result():
            self._pusher.done.add(desc.digest)
        else:
            self._pusher._ensure_blob(desc)

    def wait(self) -> None:
        """Wait for the uploads started so far; the first failure is raised."""
        for upload in self._uploads:
            upload.result()

    def close(self) -> None:
        """Drop uploads not yet started, give up streams still open, and wait for the requests in
        flight (their files go next)."""
        with self._lock:
            for stream, _future in self._streams:
                stream.abort()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stream_pool.shutdown(wait=True)  # aborted streams end at once


def _media_of(data: bytes) -> str:
    try:
        raw = m.loads(data)
    except ValueError:
        return m.OCI_MANIFEST
    if isinstance(raw, dict) and raw.get("mediaType"):
        return str(raw["mediaType"])
    if isinstance(raw, dict) and "manifests" in raw:
        return m.OCI_INDEX
    return m.OCI_MANIFEST
