"""The transport under :class:`~lifecycle.image.registry_client.RegistryClient`: retries, time
limits and bounded reads, so the client itself only speaks the distribution API.

- :class:`RedirectTransport` follows ``GET``/``HEAD`` redirects within the rules of :func:`next_url`
  and refuses redirects of anything else.
- :class:`RetryTransport` wraps an httpx transport: connection errors, timeouts, ``429`` and
  ``5xx`` are retried with backoff (:data:`ATTEMPTS` attempts in all) when the request body can be
  sent again and the operation's deadline leaves time for it; anything else is returned at once.
- Time limits (:class:`Limits`): an *idle timeout* bounds every wait for the registry (connect,
  each read, each write), and an *overall deadline* bounds one operation (reading a manifest, a
  config or a token, or transferring one blob, retries included). Each request carries its
  operation's :class:`Deadline` in ``request.extensions``; the per-attempt socket timeouts are the
  idle timeout or what is left of the deadline, whichever is shorter, and readers check the
  deadline between chunks, so a registry trickling one byte at a time is cut off too.
- :func:`read_capped` reads an answer with a size cap while streaming (after any
  ``Content-Encoding`` is undone, with a bounded inflater), never the whole body first.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO

import httpx

from lifecycle.errors import ImageError
from lifecycle.image.untrusted import clean, clean_url

ATTEMPTS = 3
BACKOFF = (0.2, 0.8, 2.0)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
CHUNK = 1 << 20
DEADLINE_KEY = "cnb.deadline"
# A blob transfer may take the deadline plus this many seconds per MiB (at least 1 MiB/s on average).
SECONDS_PER_MIB = 1.0


@dataclass(frozen=True)
class Limits:
    """Time limits for registry traffic, in seconds (``CNB_REGISTRY_TIMEOUT``,
    ``CNB_REGISTRY_DEADLINE``)."""

    idle: float = 30.0
    deadline: float = 300.0

    def operation(self, size: int = 0) -> Deadline:
        """The deadline of an operation starting now; ``size`` bytes of blob extend it."""
        extra = size / (1 << 20) * SECONDS_PER_MIB if size > 0 else 0.0
        return Deadline(time.monotonic() + self.deadline + extra, self)


@dataclass(frozen=True)
class Deadline:
    """When an operation must be done (``time.monotonic()`` seconds)."""

    at: float
    limits: Limits

    def remaining(self) -> float:
        """Seconds left (may be negative)."""
        return self.at - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def timeout(self) -> dict[str, float]:
        """httpx per-request timeouts: the idle timeout, or less when the deadline is nearer."""
        wait = max(0.05, min(self.limits.idle, self.remaining()))
        return {"connect": wait, "read": wait, "write": wait, "pool": wait}


class RegistryError(ImageError):
    """A registry request failed (after retries); ``status`` and ``codes`` are the registry's answer."""

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


@dataclass(frozen=True)
class Proxies:
    """``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY`` (either case), from the environment
    mapping the CLI read once. The proxy is chosen for the registry's own address and carries all of
    that client's traffic (token realms and upload locations too)."""

    https: str = ""
    http: str = ""
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Proxies:
        """Read the proxy variables from ``environ``."""
        def get(name: str) -> str:
            return (environ.get(name) or environ.get(name.lower()) or "").strip()

        fallback = get("ALL_PROXY")
        return cls(https=get("HTTPS_PROXY") or fallback, http=get("HTTP_PROXY") or fallback,
                   no_proxy=tuple(p.strip().lower() for p in get("NO_PROXY").split(",") if p.strip()))

    def for_url(self, url: httpx.URL) -> str | None:
        """The proxy for ``url``, or None (no proxy set, or ``NO_PROXY`` matches its host)."""
        proxy = self.https if url.scheme == "https" else self.http
        if not proxy:
            return None
        host = url.host.lower()
        hostport = f"{host}:{url.port}" if url.port else host
        for entry in self.no_proxy:
            if entry == "*" or entry in (host, hostport):
                return None
            suffix = entry if entry.startswith(".") else f".{entry}"
            if host.endswith(suffix):
                return None
        return proxy


class DeadlineExceeded(httpx.TimeoutException):
    """The operation's overall deadline passed."""


class AnswerTooLarge(Exception):
    """An answer is larger than its cap (the message names what and the cap)."""


def deadline_of(request: httpx.Request) -> Deadline | None:
    """The deadline a request carries, if any."""
    value = request.extensions.get(DEADLINE_KEY)
    return value if isinstance(value, Deadline) else None


class FileBody(httpx.SyncByteStream):
    """A request body read from a file, reopened on every iteration so a retry (or an answered
    ``401``) can send it again; raises when the file's size differs from ``size``. With ``offset``,
    the body is the ``size`` bytes from there (one chunk of a chunked upload; a file too short for
    it raises). Never more than :data:`CHUNK` bytes in memory, whatever the size."""

    def __init__(self, opener: Callable[[], IO[bytes]], size: int, offset: int | None = None) -> None:
        self.opener = opener
        self.size = size
        self.offset = offset

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        with self.opener() as src:
            if self.offset is not None:
                src.seek(self.offset)
            while True:
                want = CHUNK if self.offset is None else min(CHUNK, self.size - sent)
                chunk = src.read(want) if want else b""
                if not chunk:
                    break
                sent += len(chunk)
                if sent > self.size:
                    break
                yield chunk
        if self.offset is not None and sent < self.size:
            raise ImageError(f"blob is shorter than its descriptor says ({self.offset + sent} bytes)")
        if self.offset is None and sent != self.size:
            raise ImageError(f"blob has {'more than ' if sent > self.size else ''}{sent} bytes, its descriptor "
                             f"says {self.size}")


def replayable(request: httpx.Request) -> bool:
    """Whether the request's body can be sent again."""
    return isinstance(request.stream, (httpx.ByteStream, FileBody))


class RetryTransport(httpx.BaseTransport):
    """Retries transient failures of the wrapped transport within the request's deadline."""

    def __init__(self, inner: httpx.BaseTransport, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying what may heal; the last answer or error is the result."""
        deadline = deadline_of(request)
        attempt = 0
        while True:
            attempt += 1
            if deadline is not None:
                if deadline.expired():
                    raise DeadlineExceeded("deadline exceeded", request=request)
                request.extensions["timeout"] = deadline.timeout()
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                if not self._again(attempt, request, deadline, _permanent(exc), None):
                    if deadline is not None and deadline.expired() and isinstance(exc, httpx.TimeoutException):
                        raise DeadlineExceeded("deadline exceeded", request=request) from None
                    raise
                continue
            if response.status_code in RETRY_STATUS and \
                    self._again(attempt, request, deadline, False, response.headers.get("Retry-After")):
                response.close()
                continue
            response.extensions["cnb.attempts"] = attempt
            return response

    def _again(self, attempt: int, request: httpx.Request, deadline: Deadline | None, permanent: bool,
               retry_after: str | None) -> bool:
        if permanent or attempt >= ATTEMPTS or not replayable(request):
            return False
        delay = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), 10.0)
        if deadline is not None and deadline.remaining() <= delay:
            return False
        self.sleep(delay)
        return True

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


def _permanent(exc: httpx.TransportError) -> bool:
    """TLS handshake failures and unknown host names do not heal by retrying."""
    text = str(exc)
    return "SSL" in text or "Name or service not known" in text or "nodename nor servname" in text


def next_url(current: httpx.URL, location: str, *, insecure: bool, method: str) -> httpx.URL:
    """Where a redirect or an upload ``Location`` points, if we may go there: an absolute or
    relative http(s) URL, not from ``https`` to ``http`` (unless the registry is ``insecure``),
    without userinfo or fragment. Else a :class:`RegistryError`."""
    try:
        target = current.join(location) if location else None
        if target is None or target.scheme not in ("http", "https") or not target.host:
            raise httpx.InvalidURL("not an http(s) URL")
    except (httpx.InvalidURL, ValueError, TypeError):
        raise RegistryError(f"{method} {clean_url(current)}: the registry named an invalid location "
                            f"{clean_url(location)}") from None
    if current.scheme == "https" and target.scheme == "http" and not insecure:
        raise RegistryError(f"{method} {clean_url(current)}: the registry points to plain-http "
                            f"{clean_url(target)}; refusing to leave https")
    return target.copy_with(username=None, password=None, fragment=None)


class RedirectTransport(httpx.BaseTransport):
    """Follows redirects of ``GET``/``HEAD`` (at most :data:`MAX_REDIRECTS`, by :func:`next_url`);
    a redirect answer to any other method is an error (a body is never sent where the registry did
    not accept it first). Each hop goes through the layers below again, so the auth layer decides
    per hop whether credentials go along."""

    def __init__(self, inner: httpx.BaseTransport, *, insecure: bool) -> None:
        self.inner = inner
        self.insecure = insecure

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, following what may be followed."""
        first = request
        for _hop in range(MAX_REDIRECTS + 1):
            response = self.inner.handle_request(request)
            if response.status_code not in REDIRECTS:
                return response
            location = response.headers.get("Location", "")
            response.close()
            if request.method not in ("GET", "HEAD"):
                raise RegistryError(f"{request.method} {clean_url(request.url)}: the registry answered "
                                    f"{response.status_code} (a redirect to {clean_url(location)}); "
                                    f"{request.method} requests are not redirected", response.status_code)
            target = next_url(request.url, location, insecure=self.insecure, method=request.method)
            headers = [(k, v) for k, v in request.headers.items() if k.lower() not in ("host", "authorization")]
            request = httpx.Request(request.method, target, headers=headers, extensions=dict(first.extensions))
        raise RegistryError(f"{first.method} {clean_url(first.url)}: more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


class _Inflater:
    """Undo ``Content-Encoding`` (gzip, deflate) chunk by chunk, never producing more than asked."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[encoding]
        self._z = zlib.decompressobj(wbits)

    def feed(self, data: bytes, room: int) -> bytes:
        """Inflate ``data``; at most ``room`` + 1 bytes come out (enough to know a cap is passed)."""
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error:
            raise httpx.DecodingError(f"invalid {self.encoding} content") from None
        return out


def raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as it came (no decoding), chunk by chunk; also for answers built already read
    (``httpx.MockTransport``)."""
    try:
        data = response.content
    except httpx.ResponseNotRead:
        yield from response.iter_raw()  # as the bytes arrive: re-chunking would wait for CHUNK bytes
        return
    for start in range(0, len(data), CHUNK):
        yield data[start:start + CHUNK]


def read_capped(response: httpx.Response, cap: int, what: str, *, deadline: Deadline | None = None) -> bytes:
    """The body of ``response``, at most ``cap`` bytes after decoding, read while streaming and
    within ``deadline``; :class:`AnswerTooLarge` past the cap. Closes the response."""
    try:
        length = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            inflater = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            inflater = _Inflater(encoding)
        else:
            raise httpx.DecodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        if inflater is None and length.isdigit() and int(length) > cap:
            raise AnswerTooLarge(f"{what} is too large ({int(length)} bytes; the limit is {cap})")
        parts: list[bytes] = []
        size = 0
        for raw in raw_chunks(response):
            data = inflater.feed(raw, cap - size) if inflater is not None else raw
            size += len(data)
            if size > cap:
                raise AnswerTooLarge(f"{what} is too large (over {cap} bytes)")
            parts.append(data)
            if deadline is not None and deadline.expired():
                raise DeadlineExceeded("deadline exceeded")
        return b"".join(parts)
    finally:
        response.close()


def drain(response: httpx.Response, cap: int = 64 * 1024, deadline: Deadline | None = None) -> bytes:
    """Up to ``cap`` bytes of an answer we only want for its error text; never raises."""
    try:
        return read_capped(response, cap, "answer", deadline=deadline)
    except (httpx.HTTPError, AnswerTooLarge, OSError, ImageError):
        return b""
    finally:
        response.close()


def error_text(response: httpx.Response, deadline: Deadline | None = None) -> tuple[str, tuple[str, ...]]:
    """``CODE: message`` from a distribution error body (read with a small cap, escaped), else the
    status and its reason phrase. Closes the response."""
    body = drain(response, deadline=deadline)
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        data = None
    errors = data.get("errors") if isinstance(data, dict) else None
    parts: list[str] = []
    codes: list[str] = []
    if isinstance(errors, list):
        for err in errors[:5]:
            if isinstance(err, dict):
                code = clean(err.get("code", ""), 60).upper()
                codes.append(code)
                parts.append(f"{code}: {clean(err.get('message', ''), 200)}".strip(": "))
    if parts:
        return "; ".join(parts), tuple(codes)
    return f"{response.status_code} {clean(response.reason_phrase, 80)}".strip(), ()


def shown(request: httpx.Request) -> str:
    """``METHOD url`` for messages (no userinfo, no query)."""
    return f"{request.method} {clean_url(request.url)}"
