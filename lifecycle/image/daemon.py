"""Images in a Docker daemon: the only module that imports ``docker`` (lazily, inside functions).

Reading (:meth:`DaemonStore.find`) inspects the image; its identifier is the daemon's image ID, as
upstream records daemon images. Writing (:meth:`DaemonStore.load_layout_image`) streams a
Docker-loadable archive built on the fly from an OCI layout into ``POST /images/load``: a tar of
``manifest.json``, the config blob and the layer blobs as they are (gzip layers load fine), with
no temporary copy of any layer.

A sparse layout (layer blobs missing) can still be loaded when the daemon already has those
layers: ``docker load`` skips reading a layer file whose layer chain the daemon already holds, which
is the case for run-image layers at the bottom of an app image whose run image is in the daemon.
If it does not hold them, loading fails with an error that names the missing blobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image import ref as refs
from lifecycle.image.layout import Layout
from lifecycle.image.store import STAGING_TAG, Announce, L, Saved, Staging, StoredImage, temporary_staging
from lifecycle.image.untrusted import clean

if TYPE_CHECKING:
    from lifecycle.image.draft import Draft
    from lifecycle.image.referrers import Artifact

DEFAULT_HOST = "unix:///var/run/docker.sock"
CHUNK = 1 << 20
BLOCK = 512
_CONTAINER_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                   "StopSignal")


@dataclass
class DaemonImage:
    """An image in the daemon; offers what phases use from a layout ``Image``."""

    path: str
    image_id: str
    config: m.ImageConfig
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    manifest: m.Manifest | None = None
    manifest_digest: str = ""

    @property
    def name(self) -> str:
        """The reference as given."""
        return self.path

    @property
    def identifier(self) -> str:
        """The daemon's image ID (``sha256:<config digest>``), as upstream records daemon images."""
        return self.image_id

    @property
    def diff_ids(self) -> list[str]:
        """The layers' diffIDs."""
        return list(self.config.rootfs.diff_ids)


def familiar_name(ref: refs.ImageRef) -> str:
    """The name the daemon shows: ``my-app:latest`` for Docker Hub library images, else full."""
    name = ref.name
    if ref.registry == refs.DEFAULT_REGISTRY:
        repo = ref.repository
        name = repo[len("library/"):] if repo.startswith("library/") else repo
    if ref.digest:
        return f"{name}@{ref.digest}"
    return f"{name}:{ref.tag or refs.DEFAULT_TAG}"


_STR_FIELDS = ("Id", "Created", "Author", "Architecture", "Os", "Variant")


def inspect_problem(attrs: object) -> str:
    """What is wrong with the shape of a ``docker image inspect`` answer ("" when nothing): the
    daemon is not trusted to send the types :func:`config_from_inspect` reads."""
    if not isinstance(attrs, dict):
        return "not a JSON object"
    for key in _STR_FIELDS:
        if attrs.get(key) is not None and not isinstance(attrs[key], str):
            return f"{key} is not a string"
    if not refs.valid_digest(str(attrs.get("Id") or "")):
        return "Id is not a sha256 digest"
    for key in ("RepoTags", "RepoDigests"):
        value = attrs.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return f"{key} is not a list of strings"
    container = attrs.get("Config")
    if container is not None and not isinstance(container, dict):
        return "Config is not an object"
    rootfs = attrs.get("RootFS")
    if rootfs is not None and not isinstance(rootfs, dict):
        return "RootFS is not an object"
    layers = (rootfs or {}).get("Layers")
    if layers is not None and not (isinstance(layers, list) and all(isinstance(v, str) and refs.valid_digest(v)
                                                                    for v in layers)):
        return "RootFS.Layers is not a list of digests"
    try:
        config_from_inspect(attrs)
    except ImageError as exc:
        return str(exc)
    return ""


def config_from_inspect(attrs: Mapping[str, Any]) -> m.ImageConfig:
    """An image config rebuilt from ``docker image inspect`` output."""
    container = attrs.get("Config") or {}
    data: dict[str, Any] = {
        "created": attrs.get("Created") or None,
        "author": attrs.get("Author") or None,
        "architecture": attrs.get("Architecture") or "",
        "os": attrs.get("Os") or "",
        "variant": attrs.get("Variant") or None,
        "config": {k: container[k] for k in _CONTAINER_KEYS if container.get(k) not in (None, "", [], {})},
        "rootfs": {"type": "layers", "diff_ids": list((attrs.get("RootFS") or {}).get("Layers") or [])},
    }
    try:
        return m.ImageConfig.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        raise ImageError(f"its config is not valid: {clean(m.validation_text(exc))}") from None


class DaemonStore:
    """Images in one Docker daemon (``DOCKER_HOST``, default ``unix:///var/run/docker.sock``)."""

    kind = "daemon"

    def __init__(self, host: str = "") -> None:
        self.host = host or DEFAULT_HOST
        self._api: Any = None

    def api(self) -> Any:
        """A ``docker.APIClient`` for the daemon, created on first use."""
        if self._api is None:
            if self.host.startswith("unix://") and not os.path.exists(self.host[len("unix://"):]):
                raise ImageError(f"cannot connect to the Docker daemon at {self.host}: the socket does not "
                                 "exist (is the daemon running? set DOCKER_HOST)")
            import docker
            import docker.errors

            try:
                self._api = docker.APIClient(base_url=self.host, version="auto", timeout=300)
            except docker.errors.DockerException as exc:
                raise ImageError(f"cannot connect to the Docker daemon at {self.host}: "
                                 f"{_short(exc)}") from None
        return self._api

    def close(self) -> None:
        """Close the client."""
        if self._api is not None:
            self._api.close()
            self._api = None

    @staticmethod
    def daemon_name(reference: str) -> str:
        """What to ask the daemon for: a normalised name, or the text as is (image IDs)."""
        try:
            return familiar_name(refs.parse(reference))
        except refs.ReferenceError:
            return reference

    def find(self, reference: str) -> DaemonImage | None:
        """Inspect ``reference``; None when the daemon does not have it."""
        attrs = self.inspect(self.daemon_name(reference))
        if attrs is None:
            return None
        return DaemonImage(path=reference, image_id=str(attrs.get("Id", "")), config=config_from_inspect(attrs),
                           repo_tags=list(attrs.get("RepoTags") or []),
                           repo_digests=list(attrs.get("RepoDigests") or []))

    def inspect(self, name: str) -> dict[str, Any] | None:
        """``docker image inspect`` as a dict, or None when absent."""
        import docker.errors

        api = self.api()
        try:
            result: dict[str, Any] = api.inspect_image(name)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise ImageError(f"inspecting {name} in the Docker daemon: {_short(exc)}") from None
        except docker.errors.DockerException as exc:
            raise ImageError(f"cannot connect to the Docker daemon at {self.host}: {_short(exc)}") from None
        except OSError as exc:
            raise ImageError(f"cannot connect to the Docker daemon at {self.host}: {exc}") from None
        problem = inspect_problem(result)
        if problem:
            raise ImageError(f"the Docker daemon at {self.host} answered the inspect of {clean(name)} with an "
                             f"unexpected shape: {problem}")
        return result

    def describe(self, reference: str) -> str:
        """The name looked up in the daemon."""
        return f"{self.daemon_name(reference)} (Docker daemon at {self.host})"

    def where(self, reference: str) -> str:
        """The reference as given."""
        return reference

    def exists(self, reference: str) -> bool:
        """Whether the daemon has ``reference``."""
        return self.find(reference) is not None

    def where_missing(self, reference: str) -> str:
        """``in the Docker daemon: <name looked up>``."""
        return f"in the Docker daemon: {self.describe(reference)}"

    def names_image(self, name: str, location: str, *, first_found: bool = False) -> bool | None:
        """The daemon has no locations apart from names."""
        return None

    @contextlib.contextmanager
    def staging(self, reference: str, parent: Path | None = None) -> Iterator[Staging]:
        """A temporary sparse layout: run-image layers the daemon holds stay out of it (see
        :meth:`_DaemonStaging.lacking` for the others)."""
        with temporary_staging(parent, ".export-") as staging:
            yield _DaemonStaging(staging.layout)

    @contextlib.contextmanager
    def open_layer(self, image: StoredImage, diff_id: str, scratch: Path) -> Iterator[IO[bytes]]:
        """The layer out of a streamed ``docker save`` (only it kept, in a temporary file)."""
        tmp = Path(tempfile.mkdtemp(prefix=".layer-", dir=scratch))
        try:
            found = self.layer_files(image, {diff_id}, tmp)
            if diff_id not in found:
                raise ImageError(f"the Docker daemon did not hand out layer {diff_id}")
            with open(found[diff_id], "rb") as tar:
                yield tar
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def layer_files(self, image: StoredImage, diff_ids: set[str], scratch: Path) -> dict[str, Path]:
        """One streamed ``docker save`` of the image, keeping only those layers."""
        from lifecycle.image.daemon_layers import save_layers

        return save_layers(self, image.identifier, diff_ids, scratch)

    def save(self, staging: Staging, draft: Draft, names: Sequence[str], announce: Announce) -> Saved:
        """Load the image into the daemon under each name; the result carries its image ID."""
        written = draft.write(staging.layout)
        staging.layout.set_tag(written.manifest, STAGING_TAG)
        image_id = ""
        for name in names:
            announce(name)
            image_id = self.load_layout_image(staging.layout.path, STAGING_TAG, name)
        return Saved(written.manifest.digest, written.manifest.size, list(names), image_id=image_id)

    def attach(self, staging: Staging, saved: Saved, artifacts: Sequence[Artifact], announce: Announce) -> None:
        """A Docker daemon keeps no referrers (the platform settings refuse the request earlier)."""
        if artifacts:
            raise ImageError("a Docker daemon cannot keep OCI referrers (artifacts with a subject)")

    def load_layout_image(self, layout_dir: Path, tag_in_layout: str, reference: str) -> str:
        """Load the image tagged ``tag_in_layout`` in ``layout_dir`` into the daemon as
        ``reference``; returns the image ID."""
        import docker.errors

        archive = DockerArchive(Layout(Path(layout_dir)), tag_in_layout, reference)
        api = self.api()
        messages: list[str] = []
        try:
            for item in api.load_image(archive.stream(), quiet=True):
                if isinstance(item, dict):
                    if item.get("error") or item.get("errorDetail"):
                        raise ImageError(self._load_error(archive, str(item.get("error") or
                                                                       item.get("errorDetail"))))
                    if item.get("stream"):
                        messages.append(str(item["stream"]).strip())
        except docker.errors.APIError as exc:
            raise ImageError(self._load_error(archive, _short(exc))) from None
        except docker.errors.DockerException as exc:
            raise ImageError(f"cannot connect to the Docker daemon at {self.host}: {_short(exc)}") from None
        except OSError as exc:
            raise ImageError(f"loading {reference} into the Docker daemon: {exc}") from None
        image_id = archive.config_desc.digest
        attrs = self.inspect(image_id)
        if attrs is None:
            raise ImageError(f"the Docker daemon did not keep image {image_id} ({clean('; '.join(messages))})")
        return str(attrs.get("Id") or image_id)

    @staticmethod
    def _load_error(archive: DockerArchive, text: str) -> str:
        text = clean(text)
        if archive.missing:
            return (f"loading into the Docker daemon failed: {text}; the archive leaves out layers "
                    f"{', '.join(sorted(archive.missing))} because the daemon was expected to hold their layer "
                    f"chains (the same layers below them, in the run image or the previous image), and it does not")
        return f"loading into the Docker daemon failed: {text}"


class _DaemonStaging(Staging):
    """A staging layout for ``docker load``, which needs the bytes of every layer whose layer chain
    the daemon does not hold (see :mod:`lifecycle.image.daemon_layers`)."""

    def lacking(self, layers: Sequence[L], have: Iterable[StoredImage | None]) -> list[L]:
        """The layers whose chain is not one the daemon holds through ``have`` (every prefix of
        their layers) and whose blob is not in the staging layout."""
        from lifecycle.image.daemon_layers import chain_ids

        known: set[str] = set()
        for image in have:
            if image is not None:
                known.update(chain_ids(image.diff_ids))
        chains = chain_ids([layer.diff_id for layer in layers])
        return [layer for layer, chain in zip(layers, chains, strict=True)
                if chain not in known and not self.layout.has_blob(layer.digest)]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return clean(text[0]) if text else type(exc).__name__


class DockerArchive:
    """A ``docker load`` archive of one layout image, produced as a byte stream."""

    def __init__(self, layout: Layout, tag: str, reference: str) -> None:
        self.layout = layout
        if not layout.exists():
            raise ImageError(f"no OCI layout at {layout.path}")
        image = layout.image(tag=tag)
        self.manifest = image.manifest
        self.config_desc = image.manifest.config
        self.config_bytes = image.config_bytes
        self.missing = set(image.missing)
        self.repo_tags: list[str] = []
        try:
            parsed = refs.parse(reference)
        except refs.ReferenceError as exc:
            raise ImageError(str(exc)) from None
        if parsed.digest is None:
            self.repo_tags.append(familiar_name(parsed))

    def _name(self, digest: str) -> str:
        alg, hexpart = digest.split(":", 1)
        return f"blobs/{alg}/{hexpart}"

    def manifest_json(self) -> bytes:
        """The ``manifest.json`` docker load reads."""
        entry = {"Config": self._name(self.config_desc.digest), "RepoTags": self.repo_tags,
                 "Layers": [self._name(layer.digest) for layer in self.manifest.layers]}
        return json.dumps([entry]).encode()

    def stream(self) -> Iterator[bytes]:
        """The tar, block by block: manifest.json, config, then each present layer once."""
        yield from _member("manifest.json", self.manifest_json())
        yield from _member(self._name(self.config_desc.digest), self.config_bytes)
        seen: set[str] = set()
        for layer in self.manifest.layers:
            if layer.digest in seen or layer.digest in self.missing:
                continue
            seen.add(layer.digest)
            yield from self._file_member(layer)
        yield b"\0" * (BLOCK * 2)

    def _file_member(self, desc: m.Descriptor) -> Iterator[bytes]:
        path = self.layout.blob_path(desc.digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise ImageError(f"blob {desc.digest} is missing from layout {self.layout.path}") from None
        if desc.size == 0 and size:
            # A daemon image's layer, named by its diffID: the daemon never tells its size; the
            # digest is still verified while streaming.
            desc = m.Descriptor(mediaType=desc.mediaType, digest=desc.digest, size=size)
        if size != desc.size:
            raise ImageError(f"blob {desc.digest} in {self.layout.path} has {size} bytes, descriptor says "
                             f"{desc.size}")
        yield _header(self._name(desc.digest), size)
        with self.layout.open_blob(desc) as src:
            sent = 0
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                sent += len(chunk)
                yield chunk
        yield b"\0" * _pad(sent)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _pad(size: int) -> int:
    return (BLOCK - size % BLOCK) % BLOCK


def _member(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data))
    yield data
    yield b"\0" * _pad(len(data))


def load_layout_image(layout_dir: Path, tag_in_layout: str, reference: str, *, host: str = "") -> str:
    """Load the image tagged ``tag_in_layout`` in ``layout_dir`` into the daemon at ``host``
    (default ``unix:///var/run/docker.sock``) as ``reference``; returns the image ID."""
    store = DaemonStore(host)
    try:
        return store.load_layout_image(layout_dir, tag_in_layout, reference)
    finally:
        store.close()
