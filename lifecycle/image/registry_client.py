"""HTTP client for the OCI distribution (registry v2) API, over httpx.

Kept apart from :mod:`lifecycle.image.registry` (images and pushing) so the wire protocol, auth and
retry rules live in one place. :class:`RegistryClient` speaks to one registry: manifest and blob
``GET``/``HEAD`` with digest checks, blob upload (monolithic ``POST`` + ``PUT``, or chunked ``PATCH``
for large blobs), cross-repository mount, manifest ``PUT``.

Transport rules:

- HTTPS always, except for registries listed in ``-insecure-registry`` / ``CNB_INSECURE_REGISTRIES``
  (``host[:port]``): those are spoken to over plain HTTP. Nothing else is implicit, not even
  ``localhost`` or ``127.0.0.1`` (go-containerregistry would use HTTP for those; we don't).
- Auth (:mod:`lifecycle.image.auth`): on ``401`` the ``WWW-Authenticate`` challenge is answered,
  ``Basic`` with the registry's credentials, ``Bearer realm=...,service=...,scope=...`` by fetching
  a token from the realm (with basic credentials if we have them). Tokens are cached per scope.
- Retries: connection errors, timeouts, ``5xx`` and ``429`` are retried with backoff
  (:data:`ATTEMPTS` attempts in all); anything else fails at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

import httpx

from lifecycle.errors import ImageError
from lifecycle.image import model as m
from lifecycle.image import ref as refs
from lifecycle.image.auth import Credential, Keychain, normalize_registry

ATTEMPTS = 3
BACKOFF = (0.2, 0.8, 2.0)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_JSON = 16 * 1024 * 1024
CHUNK = 1 << 20
CHUNKED_UPLOAD_THRESHOLD = 64 * 1024 * 1024
UPLOAD_CHUNK = 16 * 1024 * 1024
USER_AGENT = "cnb-lifecycle-python"

MANIFEST_ACCEPT = ", ".join([m.OCI_MANIFEST, m.OCI_INDEX, m.DOCKER_MANIFEST, m.DOCKER_LIST])
_RETRY_STATUS = {429, 500, 502, 503, 504}
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


class RegistryError(ImageError):
    """A registry request failed (after retries)."""

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


def insecure_set(values: Sequence[str]) -> frozenset[str]:
    """Normalised ``host[:port]`` names from ``-insecure-registry`` values (commas allowed)."""
    out: set[str] = set()
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                out.add(normalize_registry(part))
    return frozenset(out)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): (quoted if quoted or not bare else bare).replace('\\"', '"')
              for k, quoted, bare in _CHALLENGE_PARAM.findall(rest)}
    return scheme.lower(), params


def _error_text(resp: httpx.Response) -> tuple[str, tuple[str, ...]]:
    """``CODE: message`` from a distribution error body, else the status phrase."""
    try:
        body = resp.json()
        errors = body.get("errors") if isinstance(body, dict) else None
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        errors = None
    if isinstance(errors, list) and errors:
        parts, codes = [], []
        for err in errors:
            if isinstance(err, dict):
                code = str(err.get("code", "")).upper()
                codes.append(code)
                parts.append(f"{code}: {err.get('message', '')}".strip(": "))
        if parts:
            return "; ".join(parts), tuple(codes)
    return f"{resp.status_code} {resp.reason_phrase}".strip(), ()


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_digest(data: bytes, digest: str, what: str) -> None:
    alg = digest.split(":", 1)[0]
    if alg not in ("sha256", "sha512"):
        raise ImageError(f"unsupported digest algorithm in {digest}")
    got = f"{alg}:{hashlib.new(alg, data).hexdigest()}"
    if got != digest:
        raise ImageError(f"{what} {digest} is corrupt: its content has digest {got}")


class RegistryClient:
    """One registry (``host[:port]``): requests with auth, retries and error mapping."""

    def __init__(self, registry: str, *, insecure: bool = False, keychain: Keychain | None = None,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        self.registry = registry
        self.insecure = insecure
        host = "registry-1.docker.io" if registry == "index.docker.io" else registry
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credential: Credential | None = (keychain or Keychain()).get(registry)
        self._sleep = sleep
        self._tokens: dict[str, str] = {}
        self._basic_preferred = False
        self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=True, transport=transport,
                                    headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        """Release connections."""
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport -------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """Absolute URL of ``/v2/...``."""
        return f"{self.base}{path}"

    def _auth_header(self, scope: str) -> str | None:
        if scope in self._tokens:
            return self._tokens[scope]
        if self.credential is not None and self.credential.header:
            return self.credential.header
        if self._basic_preferred and self.credential is not None:
            return self.credential.basic
        return None

    def request(self, method: str, url: str, *, scope: str, headers: Mapping[str, str] | None = None,
                content: Callable[[], bytes | Iterator[bytes]] | None = None,
                params: Mapping[str, str] | None = None, stream: bool = False,
                ok: Sequence[int] = (200,), missing_ok: bool = False) -> httpx.Response | None:
        """Send with auth and retries. Returns None for 404 when ``missing_ok``; raises
        :class:`RegistryError` for other statuses outside ``ok``. ``content`` is a factory so a
        retry gets a fresh body."""
        last: str = ""
        authed_once = False
        attempt = 0
        while attempt < ATTEMPTS:
            hdrs = dict(headers or {})
            auth = self._auth_header(scope)
            if auth:
                hdrs["Authorization"] = auth
            body = content() if content is not None else None
            try:
                req = self._client.build_request(method, url, headers=hdrs, content=body, params=params)
                resp = self._client.send(req, stream=stream)
            except httpx.TransportError as exc:
                last = _transport_text(exc)
                if _permanent(exc):
                    raise RegistryError(last + self._tls_hint(exc)) from None
                attempt += 1
                self._backoff(attempt, None)
                continue
            if resp.status_code == 401 and not authed_once:
                challenge = resp.headers.get("WWW-Authenticate", "")
                _close(resp)
                authed_once = True
                if self._answer(challenge, scope):
                    continue  # retry at once with the new credentials; not counted as an attempt
                raise self._fail(method, url, resp, hint=self._auth_hint())
            if resp.status_code in _RETRY_STATUS:
                text, _ = _error_text(_read(resp))
                last = f"{method} {_show(url)}: {text}"
                attempt += 1
                self._backoff(attempt, resp.headers.get("Retry-After"))
                continue
            if resp.status_code == 404 and missing_ok:
                _close(resp)
                return None
            if resp.status_code not in ok:
                raise self._fail(method, url, resp, hint=self._auth_hint() if resp.status_code in (401, 403)
                                 else "")
            return resp
        raise RegistryError(f"{last} (gave up after {ATTEMPTS} attempts)")

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        if attempt >= ATTEMPTS:
            return
        delay = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), 10.0)
        self._sleep(delay)

    def _tls_hint(self, exc: httpx.TransportError) -> str:
        if not self.insecure and "SSL" in str(exc):
            return (f" (if {self.registry} serves plain HTTP, list it in -insecure-registry or "
                    "CNB_INSECURE_REGISTRIES)")
        return ""

    def _auth_hint(self) -> str:
        if self.credential is None:
            return (f" (no credentials for {self.registry}: set CNB_REGISTRY_AUTH or add it to the Docker "
                    "config file)")
        return ""

    def _fail(self, method: str, url: str, resp: httpx.Response, hint: str = "") -> RegistryError:
        text, codes = _error_text(_read(resp))
        return RegistryError(f"{method} {_show(url)}: {text}{hint}", resp.status_code, codes)

    def _answer(self, challenge: str, scope: str) -> bool:
        """Set up credentials for ``challenge``; False when we have nothing to answer with."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.credential is None or self.credential.basic is None:
                return False
            self._basic_preferred = True
            return True
        if scheme == "bearer" and params.get("realm"):
            token = self._fetch_token(params, scope)
            self._tokens[scope] = f"Bearer {token}"
            return True
        return False

    def _fetch_token(self, params: Mapping[str, str], scope: str) -> str:
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for item in scope.split(" ") if scope else params.get("scope", "").split(" "):
            if item:
                query.append(("scope", item))
        hdrs: dict[str, str] = {}
        cred = self.credential
        if cred is not None and cred.identity_token:
            # OAuth2 refresh-token exchange, as docker does for identity tokens.
            form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                    "service": params.get("service", ""), "scope": scope, "client_id": USER_AGENT}
            resp = self._token_request("POST", params["realm"], data=form)
        else:
            if cred is not None and cred.basic:
                hdrs["Authorization"] = cred.basic
            resp = self._token_request("GET", params["realm"], params=query, headers=hdrs)
        try:
            data = resp.json()
        except ValueError:
            raise RegistryError(f"token endpoint {_show(params['realm'])} returned invalid JSON") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token endpoint {_show(params['realm'])} returned no token")
        return token

    def _token_request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        last = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                resp = self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                last = _transport_text(exc)
                self._backoff(attempt, None)
                continue
            if resp.status_code in _RETRY_STATUS:
                last = f"{method} {_show(url)}: {resp.status_code}"
                self._backoff(attempt, resp.headers.get("Retry-After"))
                continue
            if resp.status_code != 200:
                text, codes = _error_text(resp)
                raise RegistryError(f"token request {_show(url)}: {text}{self._auth_hint()}",
                                    resp.status_code, codes)
            return resp
        raise RegistryError(f"{last} (gave up after {ATTEMPTS} attempts)")

    # ---- reading ---------------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of ``reference`` (tag or digest); None when absent."""
        url = self.url(f"/v2/{repository}/manifests/{reference}")
        resp = self.request("GET", url, scope=_pull(repository), headers={"Accept": MANIFEST_ACCEPT},
                            missing_ok=True)
        if resp is None:
            return None
        data = resp.content
        if len(data) > MAX_JSON:
            raise ImageError(f"manifest {reference} in {self.registry}/{repository} is too large")
        if refs.valid_digest(reference):
            _check_digest(data, reference, "manifest")
        media = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return data, media

    def blob_exists(self, repository: str, digest: str) -> int | None:
        """The blob's size when the repository has it, else None."""
        url = self.url(f"/v2/{repository}/blobs/{digest}")
        resp = self.request("HEAD", url, scope=_pull(repository), missing_ok=True)
        if resp is None:
            return None
        length = resp.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def get_blob(self, repository: str, digest: str, *, max_size: int = MAX_JSON) -> bytes:
        """A small blob (config), checked against its digest."""
        url = self.url(f"/v2/{repository}/blobs/{digest}")
        resp = self.request("GET", url, scope=_pull(repository), missing_ok=True)
        if resp is None:
            raise ImageError(f"blob {digest} not found in {self.registry}/{repository}")
        data = resp.content
        if len(data) > max_size:
            raise ImageError(f"blob {digest} is too large ({len(data)} bytes)")
        _check_digest(data, digest, "blob")
        return data

    def stream_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        """Stream a (layer) blob; raises at the end if its digest is wrong."""
        url = self.url(f"/v2/{repository}/blobs/{digest}")
        resp = self.request("GET", url, scope=_pull(repository), stream=True, missing_ok=True)
        if resp is None:
            raise ImageError(f"blob {digest} not found in {self.registry}/{repository}")
        alg = digest.split(":", 1)[0]
        hasher = hashlib.new(alg)
        try:
            for chunk in resp.iter_bytes(CHUNK):
                hasher.update(chunk)
                yield chunk
        except httpx.TransportError as exc:
            raise RegistryError(f"reading blob {digest}: {_transport_text(exc)}") from None
        finally:
            resp.close()
        got = f"{alg}:{hasher.hexdigest()}"
        if got != digest:
            raise ImageError(f"blob {digest} from {self.registry}/{repository} is corrupt: got {got}")

    # ---- writing ---------------------------------------------------------------------------
    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Try a cross-repository mount from ``source``. None when mounted; else the upload
        location the registry opened instead (use it, or :meth:`cancel_upload` it)."""
        url = self.url(f"/v2/{repository}/blobs/uploads/")
        resp = self.request("POST", url, scope=f"{_push(repository)} {_pull(source)}",
                            params={"mount": digest, "from": source}, ok=(201, 202),
                            content=lambda: b"", headers={"Content-Length": "0"})
        assert resp is not None
        if resp.status_code == 201:
            return None
        return self._location(resp)

    def cancel_upload(self, repository: str, location: str) -> None:
        """Abandon an upload session (best effort)."""
        with contextlib.suppress(RegistryError):
            self.request("DELETE", location, scope=_push(repository), ok=(200, 202, 204), missing_ok=True)

    def upload_blob(self, repository: str, desc: m.Descriptor, opener: Callable[[], IO[bytes]],
                    location: str | None = None) -> None:
        """Upload a blob from ``opener()`` (called once per try): monolithic when small, chunked
        ``PATCH`` when over :data:`CHUNKED_UPLOAD_THRESHOLD`. ``location`` reuses an open session."""
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
                if attempt == ATTEMPTS or (exc.status and exc.status not in _RETRY_STATUS):
                    raise
                self._backoff(attempt, None)

    def start_upload(self, repository: str) -> str:
        """``POST /blobs/uploads/`` -> the session location."""
        url = self.url(f"/v2/{repository}/blobs/uploads/")
        resp = self.request("POST", url, scope=_push(repository), ok=(202,), content=lambda: b"",
                            headers={"Content-Length": "0"})
        assert resp is not None
        return self._location(resp)

    def _upload_monolithic(self, repository: str, desc: m.Descriptor, opener: Callable[[], IO[bytes]],
                           location: str) -> None:
        url = httpx.URL(location).copy_merge_params({"digest": desc.digest})

        def body() -> Iterator[bytes]:
            return _file_chunks(opener, desc.size)

        self.request("PUT", str(url), scope=_push(repository), content=body, ok=(201,),
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(desc.size)})

    def _upload_chunked(self, repository: str, desc: m.Descriptor, opener: Callable[[], IO[bytes]],
                        location: str) -> None:
        offset = 0
        with opener() as src:
            while offset < desc.size:
                data = src.read(UPLOAD_CHUNK)
                if not data:
                    raise ImageError(f"blob {desc.digest} is shorter than its descriptor says ({offset} bytes)")
                end = offset + len(data) - 1
                resp = self.request("PATCH", location, scope=_push(repository), content=_const(data),
                                    ok=(202,), headers={"Content-Type": "application/octet-stream",
                                                        "Content-Range": f"{offset}-{end}",
                                                        "Content-Length": str(len(data))})
                assert resp is not None
                location = self._location(resp)
                offset += len(data)
        url = httpx.URL(location).copy_merge_params({"digest": desc.digest})
        self.request("PUT", str(url), scope=_push(repository), content=lambda: b"", ok=(201,),
                     headers={"Content-Length": "0"})

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """``PUT`` a manifest under a tag or digest; returns its digest."""
        url = self.url(f"/v2/{repository}/manifests/{reference}")
        resp = self.request("PUT", url, scope=_push(repository), content=lambda: data, ok=(201, 200),
                            headers={"Content-Type": media_type})
        assert resp is not None
        digest = sha256_digest(data)
        said = resp.headers.get("Docker-Content-Digest")
        if said and said != digest:
            raise ImageError(f"registry stored manifest as {said}, expected {digest}")
        return digest

    def _location(self, resp: httpx.Response) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{resp.request.method} {_show(str(resp.request.url))}: no Location header")
        return str(resp.request.url.join(loc))


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _show(url: str) -> str:
    u = httpx.URL(url)
    return str(u.copy_with(query=None)) if u.query else url


def _transport_text(exc: httpx.TransportError) -> str:
    req = exc.request if _has_request(exc) else None
    where = f"{req.method} {_show(str(req.url))}: " if req is not None else ""
    cause = str(exc) or type(exc).__name__
    return f"{where}cannot connect to the registry: {cause}"


def _permanent(exc: httpx.TransportError) -> bool:
    """TLS handshake failures and unknown host names do not heal by retrying."""
    text = str(exc)
    return "SSL" in text or "Name or service not known" in text or "nodename nor servname" in text


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def _read(resp: httpx.Response) -> httpx.Response:
    try:
        resp.read()
    except httpx.HTTPError:
        pass
    finally:
        resp.close()
    return resp


def _close(resp: httpx.Response) -> None:
    _read(resp)


def _file_chunks(opener: Callable[[], IO[bytes]], size: int) -> Iterator[bytes]:
    sent = 0
    with opener() as src:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            sent += len(chunk)
            yield chunk
    if sent != size:
        raise ImageError(f"blob has {sent} bytes, its descriptor says {size}")

