"""The OCI distribution (registry v2) API verbs, over httpx.

Kept apart from :mod:`lifecycle.image.registry` (images and pushing). :class:`RegistryClient` speaks
to one registry: manifest and blob ``GET``/``HEAD`` with digest checks, blob upload (monolithic
``POST`` + ``PUT``, or chunked ``PATCH`` for large blobs; either way the body streams from the
blob's file), cross-repository mount, manifest ``PUT``.
What is not the API lives in transport layers under it, stacked on the httpx client (redirects
-> auth -> retries -> HTTP):

- :mod:`lifecycle.image.registry_transport`: redirects (``GET``/``HEAD`` only, no downgrade),
  retries, the idle timeout and the overall deadline of each operation, bounded reads;
- :mod:`lifecycle.image.registry_auth`: credentials only for the registry's own origin, ``401``
  challenges, token realms that may receive them.

Rules of this module: every digest, tag and repository is validated before it goes into a URL;
JSON answers are read with a cap while streaming; a blob is read no further than its descriptor's
size and checked against its digest; an upload ``Location`` that downgrades the scheme is refused;
every string from the server is escaped (:mod:`lifecycle.image.untrusted`) before it is put in a
message.

HTTPS always, except for registries listed in ``-insecure-registry`` / ``CNB_INSECURE_REGISTRIES``
(``host[:port]``): those are spoken to over plain HTTP. Nothing else is implicit, not even
``localhost`` or ``127.0.0.1`` (go-containerregistry would use HTTP for those; we don't).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

import httpx

from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image import ref as refs
from lifecycle.image.auth import Keychain, normalize_registry
from lifecycle.image.registry_auth import SCOPE_KEY, USER_AGENT, AuthTransport, Origin, RegistryAuth, parse_challenge
from lifecycle.image.registry_transport import (
    ATTEMPTS,
    DEADLINE_KEY,
    RETRY_STATUS,
    AnswerTooLarge,
    Deadline,
    DeadlineExceeded,
    FileBody,
    Limits,
    Proxies,
    RedirectTransport,
    RegistryError,
    RetryTransport,
    drain,
    error_text,
    next_url,
    raw_chunks,
    read_capped,
)
from lifecycle.image.untrusted import clean, clean_url

__all__ = ["ATTEMPTS", "Limits", "Proxies", "RegistryClient", "RegistryError", "insecure_set", "parse_challenge",
           "sha256_digest"]

MAX_JSON = 16 * 1024 * 1024
CHUNK = 1 << 20
CHUNKED_UPLOAD_THRESHOLD = 64 * 1024 * 1024
UPLOAD_CHUNK = 16 * 1024 * 1024
MANIFEST_ACCEPT = ", ".join([m.OCI_MANIFEST, m.OCI_INDEX, m.DOCKER_MANIFEST, m.DOCKER_LIST])
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def insecure_set(values: Sequence[str]) -> frozenset[str]:
    """Normalised ``host[:port]`` names from ``-insecure-registry`` values (commas allowed)."""
    out: set[str] = set()
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                out.add(normalize_registry(part))
    return frozenset(out)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str, what: str = "digest") -> str:
    """``digest`` when it is ``sha256:<64 hex>`` or ``sha512:<128 hex>``; else an ImageError (escaped)."""
    if not isinstance(digest, str) or not refs.valid_digest(digest):
        raise ImageError(f"invalid {what} {clean(digest, 150)!s}: want sha256:<64 hex> or sha512:<128 hex>")
    return digest


def _check_repository(repository: str) -> str:
    if not _REPO.fullmatch(repository) or len(repository) > 255:
        raise ImageError(f"invalid repository name {clean(repository, 150)}")
    return repository


def _check_reference(reference: str) -> str:
    """A tag or a digest, as it may appear in ``/manifests/<reference>``."""
    if ":" in reference:
        return check_digest(reference, "manifest digest")
    if not _TAG.fullmatch(reference):
        raise ImageError(f"invalid tag {clean(reference, 150)}")
    return reference


def _verify(data: bytes, digest: str, what: str) -> None:
    alg = digest.split(":", 1)[0]
    got = f"{alg}:{hashlib.new(alg, data).hexdigest()}"
    if got != digest:
        raise ImageError(f"{what} {digest} is corrupt: its content has digest {got}")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The CA-verifying TLS context every registry client shares: ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``, else certifi's bundle. Made once; the CLI makes it before dropping to the CNB
    user, because the bundle may be out of that user's reach afterwards (a frozen executable unpacks
    it into a root-only temporary directory)."""
    return httpx.create_ssl_context(trust_env=True)


class RegistryClient:
    """One registry (``host[:port]``): the distribution API verbs.

    Over 200 lines because there are a dozen verbs, each checking its names and its answer; auth,
    retries, redirects and limits are not here but in the transport layers.
    """

    def __init__(self, registry: str, *, insecure: bool = False, keychain: Keychain | None = None,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 limits: Limits | None = None, proxies: Proxies | None = None) -> None:
        self.registry = registry
        self.insecure = insecure
        self.limits = limits or Limits()
        host = "registry-1.docker.io" if registry == "index.docker.io" else registry
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credential = (keychain or Keychain()).get(registry)
        self.auth = RegistryAuth(registry, Origin.of(httpx.URL(self.base)), self.credential, insecure=insecure)
        # Redirects -> auth -> retries -> HTTP: the client itself follows no redirects and mounts no
        # env proxies beside the stack (they would bypass its layers).
        inner = transport or httpx.HTTPTransport(verify=tls_context(), trust_env=True,
                                                 proxy=(proxies or Proxies()).for_url(httpx.URL(self.base)))
        stack = RedirectTransport(AuthTransport(self.auth, RetryTransport(inner, sleep=sleep)), insecure=insecure)
        self._client = httpx.Client(transport=stack,
                                    follow_redirects=False, trust_env=False, timeout=self.limits.idle,
                                    headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})

    def close(self) -> None:
        """Release connections."""
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def credential_hint(self) -> str:
        """What to add to a 401/403 message."""
        return self.auth.hint()

    # ---- one exchange --------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """Absolute URL of ``/v2/...``."""
        return f"{self.base}{path}"

    def request(self, method: str, url: str, *, scope: str, headers: Mapping[str, str] | None = None,
                content: Callable[[], bytes] | FileBody | None = None,
                params: Mapping[str, str] | None = None, stream: bool = False,
                ok: Sequence[int] = (200,), missing_ok: bool = False,
                deadline: Deadline | None = None) -> httpx.Response | None:
        """Send one API request (auth, retries and limits are the transport's). Returns None for
        404 when ``missing_ok``; raises :class:`RegistryError` for other statuses outside ``ok``.
        A streamed answer (``stream=True``) must be closed by the caller."""
        deadline = deadline or self.limits.operation()
        resp = self._send(method, url, scope=scope, headers=headers, content=content, params=params,
                          deadline=deadline)
        if resp.status_code == 404 and missing_ok:
            resp.close()
            return None
        if resp.status_code not in ok:
            raise self._fail(resp, deadline)
        if not stream:
            drain(resp, deadline=deadline)  # status and headers are what counts; the body is dropped
        return resp

    def _send(self, method: str, url: str, *, scope: str, headers: Mapping[str, str] | None,
              content: Callable[[], bytes] | FileBody | None, params: Mapping[str, str] | None,
              deadline: Deadline) -> httpx.Response:
        target = httpx.URL(url)
        if params:
            target = target.copy_merge_params(params)
        data = content() if content is not None and not isinstance(content, FileBody) else None
        request = self._client.build_request(method, target, headers=dict(headers or {}), content=data,
                                             extensions={DEADLINE_KEY: deadline, SCOPE_KEY: scope,
                                                         "timeout": deadline.timeout()})
        if isinstance(content, FileBody):
            request.stream = content  # sent again by a retry: it reopens its file
        try:
            return self._client.send(request, stream=True)
        except DeadlineExceeded:
            raise self._deadline_error(request) from None
        except httpx.TimeoutException:
            raise RegistryError(f"{method} {clean_url(target)}: the registry {self.registry} sent nothing for "
                                f"{self.limits.idle:g}s (CNB_REGISTRY_TIMEOUT)") from None
        except httpx.TransportError as exc:
            raise RegistryError(f"{method} {clean_url(target)}: cannot connect to the registry: "
                                f"{clean(exc) or type(exc).__name__}{self._tls_hint(exc)}") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise RegistryError(f"{method} {clean_url(target)}: {clean(exc) or type(exc).__name__}") from None

    def _deadline_error(self, request: httpx.Request) -> RegistryError:
        return RegistryError(f"{request.method} {clean_url(request.url)}: the registry {self.registry} did not "
                             f"finish within the deadline of {self.limits.deadline:g}s (CNB_REGISTRY_DEADLINE)")

    def _tls_hint(self, exc: httpx.TransportError) -> str:
        if not self.insecure and "SSL" in str(exc):
            return (f" (if {self.registry} serves plain HTTP, list it in -insecure-registry or "
                    "CNB_INSECURE_REGISTRIES)")
        return ""

    def _fail(self, resp: httpx.Response, deadline: Deadline) -> RegistryError:
        text, codes = error_text(resp, deadline)
        hint = self.auth.hint() if resp.status_code in (401, 403) else ""
        attempts = resp.extensions.get("cnb.attempts", 1)
        gave_up = f" (gave up after {attempts} attempts)" if resp.status_code in RETRY_STATUS and attempts > 1 \
            else ""
        return RegistryError(f"{resp.request.method} {clean_url(resp.request.url)}: {text}{hint}{gave_up}",
                             resp.status_code, codes)

    def _read_json(self, resp: httpx.Response, what: str, cap: int, deadline: Deadline) -> bytes:
        try:
            return read_capped(resp, cap, what, deadline=deadline)
        except AnswerTooLarge as exc:
            raise ImageError(str(exc)) from None
        except DeadlineExceeded:
            raise self._deadline_error(resp.request) from None
        except httpx.TimeoutException:
            raise RegistryError(f"reading {what}: the registry {self.registry} sent nothing for "
                                f"{self.limits.idle:g}s (CNB_REGISTRY_TIMEOUT)") from None
        except httpx.HTTPError as exc:
            raise RegistryError(f"reading {what}: {clean(exc) or type(exc).__name__}") from None

    # ---- reading ---------------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of ``reference`` (tag or digest); None when absent."""
        _check_repository(repository)
        _check_reference(reference)
        deadline = self.limits.operation()
        url = self.url(f"/v2/{repository}/manifests/{reference}")
        resp = self.request("GET", url, scope=_pull(repository), headers={"Accept": MANIFEST_ACCEPT},
                            missing_ok=True, stream=True, deadline=deadline)
        if resp is None:
            return None
        media = clean(resp.headers.get("Content-Type", "").split(";", 1)[0].strip(), 200)
        data = self._read_json(resp, f"manifest {reference} in {self.registry}/{repository}", MAX_JSON, deadline)
        if refs.valid_digest(reference):
            _verify(data, reference, "manifest")
        return data, media

    def blob_exists(self, repository: str, digest: str) -> int | None:
        """The blob's size when the repository has it, else None."""
        _check_repository(repository)
        check_digest(digest, "blob digest")
        url = self.url(f"/v2/{repository}/blobs/{digest}")
        resp = self.request("HEAD", url, scope=_pull(repository), missing_ok=True, stream=True)
        if resp is None:
            return None
        resp.close()
        length = resp.headers.get("Content-Length", "")
        return int(length) if length.isdigit() and len(length) < 19 else 0

    def get_blob(self, repository: str, digest: str, *, max_size: int = MAX_JSON, size: int | None = None) -> bytes:
        """A small blob (config), read with a cap (``size``, its descriptor's, when known) and
        checked against its digest."""
        _check_repository(repository)
        check_digest(digest, "blob digest")
        if size is not None and not 0 <= size <= max_size:
            raise ImageError(f"blob {digest} is too large ({size} bytes; the limit is {max_size})")
        deadline = self.limits.operation()
        url = self.url(f"/v2/{repository}/blobs/{digest}")
        resp = self.request("GET", url, scope=_pull(repository), missing_ok=True, stream=True, deadline=deadline)
        if resp is None:
            raise ImageError(f"blob {digest} not found in {self.registry}/{repository}")
        data = self._read_json(resp, f"blob {digest}", max_size if size is None else size, deadline)
        _verify(data, digest, "blob")
        return data

    def stream_blob(self, repository: str, digest: str, size: int | None = None) -> Iterator[bytes]:
        """Stream a (layer) blob; with ``size`` (the descriptor's) no byte past it is read, and a
        blob of another size is an error before its last chunk is handed out; the digest is checked
        at the end (an error raised from the iterator)."""
        _check_repository(repository)
        check_digest(digest, "blob digest")
        deadline = self.limits.operation(size or 0)
        url = self.url(f"/v2/{repository}/blobs/{digest}")
        resp = self.request("GET", url, scope=_pull(repository), stream=True, missing_ok=True, deadline=deadline)
        if resp is None:
            raise ImageError(f"blob {digest} not found in {self.registry}/{repository}")
        length = resp.headers.get("Content-Length", "")
        if size is not None and length.isdigit() and int(length) != size:
            resp.close()
            raise ImageError(f"blob {digest} from {self.registry}/{repository} has {int(length)} bytes, its "
                             f"descriptor says {size}")
        alg = digest.split(":", 1)[0]
        hasher = hashlib.new(alg)
        got = 0
        try:
            for chunk in raw_chunks(resp):
                got += len(chunk)
                if size is not None and got > size:
                    raise ImageError(f"blob {digest} from {self.registry}/{repository} is larger than its "
                                     f"descriptor's {size} bytes")
                if deadline.expired():
                    raise self._deadline_error(resp.request)
                hasher.update(chunk)
                if size is not None and got == size:
                    # The last chunk: check before handing it out.
                    _check_stream(hasher, digest, self.registry, repository)
                yield chunk
        except httpx.TimeoutException:
            raise RegistryError(f"reading blob {digest}: the registry {self.registry} sent nothing for "
                                f"{self.limits.idle:g}s (CNB_REGISTRY_TIMEOUT)") from None
        except httpx.HTTPError as exc:
            raise RegistryError(f"reading blob {digest}: {clean(exc) or type(exc).__name__}") from None
        finally:
            resp.close()
        if size is not None and got != size:
            raise ImageError(f"blob {digest} from {self.registry}/{repository} has {got} bytes, its descriptor "
                             f"says {size}")
        _check_stream(hasher, digest, self.registry, repository)

    # ---- writing ---------------------------------------------------------------------------
    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Try a cross-repository mount from ``source``. None when mounted; else the upload
        location the registry opened instead (use it, or :meth:`cancel_upload` it)."""
        _check_repository(repository)
        _check_repository(source)
        check_digest(digest, "blob digest")
        url = self.url(f"/v2/{repository}/blobs/uploads/")
        resp = self.request("POST", url, scope=f"{_push(repository)} {_pull(source)}",
                            params={"mount": digest, "from": source}, ok=(201, 202),
                            content=lambda: b"", headers={"Content-Length": "0"})
        assert resp is not None
        resp.close()
        if resp.status_code == 201:
            return None
        return self._location(resp)

    def cancel_upload(self, repository: str, location: str) -> None:
        """Abandon an upload session (best effort)."""
        with contextlib.suppress(ImageError):
            resp = self.request("DELETE", location, scope=_push(repository), ok=(200, 202, 204), missing_ok=True)
            if resp is not None:
                resp.close()

    def upload_blob(self, repository: str, desc: m.Descriptor, opener: Callable[[], IO[bytes]],
                    location: str | None = None) -> None:
        """Upload a blob from ``opener()`` (called once per try): monolithic when small, chunked
        ``PATCH`` when over :data:`CHUNKED_UPLOAD_THRESHOLD`. ``location`` reuses an open session."""
        _check_repository(repository)
        check_digest(desc.digest, "blob digest")
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if location is None:
                    location = self.start_upload(repository)
                if desc.size > CHUNKED_UPLOAD_THRESHOLD:
                    self._upload_chunked(repository, desc, opener, location)
                else:
                    self._upload_monolithic(repository, desc, opener, location)
                return
            except RegistryError as exc:
                # A session broken mid-way cannot be resumed reliably: start over with a new one.
                location = None
                if attempt == ATTEMPTS or (exc.status and exc.status not in RETRY_STATUS):
                    raise

    def start_upload(self, repository: str) -> str:
        """``POST /blobs/uploads/`` -> the session location."""
        _check_repository(repository)
        url = self.url(f"/v2/{repository}/blobs/uploads/")
        resp = self.request("POST", url, scope=_push(repository), ok=(202,), content=lambda: b"",
                            headers={"Content-Length": "0"})
        assert resp is not None
        resp.close()
        return self._location(resp)

    def _upload_monolithic(self, repository: str, desc: m.Descriptor, opener: Callable[[], IO[bytes]],
                           location: str) -> None:
        url = httpx.URL(location).copy_merge_params({"digest": desc.digest})
        resp = self.request("PUT", str(url), scope=_push(repository), content=FileBody(opener, desc.size),
                            ok=(201,), deadline=self.limits.operation(desc.size),
                            headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)})
        assert resp is not None
        resp.close()

    def _upload_chunked(self, repository: str, desc: m.Descriptor, opener: Callable[[], IO[bytes]],
                        location: str) -> None:
        offset = 0
        while offset < desc.size:
            length = min(UPLOAD_CHUNK, desc.size - offset)
            location = self.upload_chunk(repository, location, opener, offset, length)
            offset += length
        with opener() as src:
            src.seek(desc.size)
            if src.read(1):
                raise ImageError(f"blob {desc.digest} is longer than its descriptor's {desc.size} bytes")
        self.finish_upload(repository, location, desc.digest)

    def upload_chunk(self, repository: str, location: str, opener: Callable[[], IO[bytes]], offset: int,
                     length: int) -> str:
        """``PATCH`` the ``length`` bytes at ``offset`` of ``opener()``'s file into an upload
        session; returns the session's next location. The body streams its window of the file
        (never more than a read buffer in memory) and is read again by a retry."""
        _check_repository(repository)
        resp = self.request("PATCH", location, scope=_push(repository), content=FileBody(opener, length, offset),
                            ok=(202,), deadline=self.limits.operation(length),
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Range": f"{offset}-{offset + length - 1}",
                                     "Content-Length": str(length)})
        assert resp is not None
        resp.close()
        return self._location(resp)

    def finish_upload(self, repository: str, location: str, digest: str) -> None:
        """Close an upload session whose bytes were all sent: ``PUT ?digest=`` (the registry checks it)."""
        _check_repository(repository)
        check_digest(digest, "blob digest")
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        resp = self.request("PUT", str(url), scope=_push(repository), content=lambda: b"", ok=(201,),
                            headers={"Content-Length": "0"})
        assert resp is not None
        resp.close()

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """``PUT`` a manifest under a tag or digest; returns its digest."""
        return self._put_manifest(repository, reference, data, media_type)[0]

    def put_referrer(self, repository: str, data: bytes, media_type: str, subject: str) -> bool:
        """``PUT`` a manifest with a ``subject`` by its digest; True when the registry says (header
        ``OCI-Subject``) it indexed the subject for the referrers API, so no fallback tag is needed."""
        digest = sha256_digest(data)
        said: str = self._put_manifest(repository, digest, data, media_type)[1].get("OCI-Subject", "")
        return said == subject

    def _put_manifest(self, repository: str, reference: str, data: bytes, media_type: str
                      ) -> tuple[str, httpx.Headers]:
        _check_repository(repository)
        _check_reference(reference)
        url = self.url(f"/v2/{repository}/manifests/{reference}")
        resp = self.request("PUT", url, scope=_push(repository), content=lambda: data, ok=(201, 200),
                            headers={"Content-Type": media_type})
        assert resp is not None
        resp.close()
        digest = sha256_digest(data)
        said = resp.headers.get("Docker-Content-Digest")
        if said and said != digest:
            raise ImageError(f"registry stored manifest as {clean(said, 150)}, expected {digest}")
        return digest, resp.headers

    def _location(self, resp: httpx.Response) -> str:
        """The upload session URL a registry answered with: no credentials go there unless it is
        the registry's own origin (the auth layer's rule); a scheme downgrade is refused."""
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{resp.request.method} {clean_url(resp.request.url)}: no Location header")
        return str(next_url(resp.request.url, loc, insecure=self.insecure, method=resp.request.method))


def _check_stream(hasher: Any, digest: str, registry: str, repository: str) -> None:
    got = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
    if got != digest:
        raise ImageError(f"blob {digest} from {registry}/{repository} is corrupt: got {got}")


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"
