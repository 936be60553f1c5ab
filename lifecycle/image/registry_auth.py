"""Registry auth as a transport layer: credentials stay in their registry's trust domain.

:class:`AuthTransport` sits between the httpx client and :class:`~lifecycle.image.registry_transport.RetryTransport`.
It attaches an ``Authorization`` header only to requests whose scheme, host and port are the
registry's own (:class:`Origin`), so an upload ``Location`` or a redirect to another host gets no
credentials. On a ``401`` from the registry it answers the ``WWW-Authenticate`` challenge once and
sends the request again (when its body can be sent again): ``Basic`` with the registry's
credentials, ``Bearer realm=...`` by fetching a token from the realm, cached per scope.

Token realms (:func:`check_realm`): ``https`` on any host (Docker Hub's token service lives on
another host than its registry); plain ``http`` only for registries in ``-insecure-registry``;
an IP literal in a loopback, private, link-local or otherwise special range (or ``localhost``)
only when it is the registry's own host and port. Anything else is refused with an error naming
the realm, before any credential is sent.

Why a transport and not an ``httpx.Auth`` flow: httpx reads every intermediate answer of an auth
flow whole (``response.read()``), so a hostile ``401`` with an endless body would be read into
memory; at the transport level the ``401`` is closed unread.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from lifecycle.image.auth import Credential
from lifecycle.image.registry_transport import (
    DEADLINE_KEY,
    AnswerTooLarge,
    Deadline,
    RegistryError,
    deadline_of,
    error_text,
    read_capped,
    replayable,
)
from lifecycle.image.untrusted import clean, clean_url

SCOPE_KEY = "cnb.scope"
MAX_TOKEN_ANSWER = 1 << 20
USER_AGENT = "cnb-lifecycle-python"
_TOKEN_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: the unit credentials are bound to."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: httpx.URL) -> Origin:
        """The origin of ``url`` (default ports filled in)."""
        port = url.port or (443 if url.scheme == "https" else 80)
        return cls(url.scheme, url.host.lower().rstrip("."), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {...}); tolerant of odd spacing."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            value = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(value)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return scheme.lower(), params


def _special_host(host: str) -> bool:
    """Loopback, private, link-local, unspecified, reserved or multicast IP literals, and localhost."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_reserved
            or ip.is_multicast)


def check_realm(realm: str, registry: Origin, *, insecure: bool, name: str) -> httpx.URL:
    """The token realm ``realm`` as a URL we may send ``name``'s credentials to, else a
    :class:`RegistryError` saying why not. Userinfo and fragment are dropped."""
    shown = clean_url(realm)
    try:
        url = httpx.URL(realm)
        if not url.host:
            raise httpx.InvalidURL("no host")
    except (httpx.InvalidURL, ValueError, TypeError):
        raise RegistryError(f"registry {name} named an invalid token realm {shown}") from None
    if url.scheme not in ("http", "https"):
        raise RegistryError(f"registry {name} named token realm {shown}: only https (or http for "
                            "-insecure-registry registries) is allowed")
    if url.scheme == "http" and not insecure:
        raise RegistryError(f"registry {name} named a plain-http token realm {shown}; refusing to send "
                            f"credentials in clear text (list {name} in -insecure-registry to allow it)")
    realm_origin = Origin.of(url)
    if _special_host(realm_origin.host) and \
            (realm_origin.host, realm_origin.port) != (registry.host, registry.port):
        raise RegistryError(f"registry {name} named token realm {shown} on a loopback, private or "
                            "link-local address that is not the registry's own; refusing it")
    return url.copy_with(username=None, password=None, fragment=None)


class RegistryAuth:
    """What one registry's requests authenticate with: its credential, its origin, tokens by scope."""

    def __init__(self, name: str, origin: Origin, credential: Credential | None, *, insecure: bool) -> None:
        self.name = name
        self.origin = origin
        self.credential = credential
        self.insecure = insecure
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()

    def header(self, scope: str) -> str | None:
        """The ``Authorization`` value for a request of ``scope`` to the registry, if any."""
        with self._lock:
            if scope in self._tokens:
                return self._tokens[scope]
        cred = self.credential
        if cred is not None and cred.header:
            return cred.header
        if self._basic and cred is not None:
            return cred.basic
        return None

    def hint(self) -> str:
        """What to say after a 401/403 when we have no credentials."""
        if self.credential is None:
            return (f" (no credentials for {self.name}: set CNB_REGISTRY_AUTH or add it to the Docker "
                    "config file)")
        return ""

    def answer(self, challenge: str, scope: str, inner: httpx.BaseTransport, deadline: Deadline | None) -> bool:
        """Set up credentials for ``challenge``; False when we have nothing to answer with."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.credential is None or self.credential.basic is None:
                return False
            self._basic = True
            return True
        if scheme == "bearer" and params.get("realm"):
            token = self._fetch_token(params, scope, inner, deadline)
            with self._lock:
                self._tokens[scope] = f"Bearer {token}"
            return True
        return False

    def _fetch_token(self, params: Mapping[str, str], scope: str, inner: httpx.BaseTransport,
                     deadline: Deadline | None) -> str:
        realm = check_realm(params["realm"], self.origin, insecure=self.insecure, name=self.name)
        shown = clean_url(realm)
        scopes = [s for s in (scope or params.get("scope", "")).split(" ") if s]
        cred = self.credential
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if cred is not None and cred.identity_token:
            # OAuth2 refresh-token exchange, as docker does for identity tokens.
            form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                    "service": params.get("service", ""), "scope": " ".join(scopes), "client_id": USER_AGENT}
            body = str(httpx.QueryParams(form)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = httpx.Request("POST", realm, headers=headers, content=body)
        else:
            query: list[tuple[str, str | int | float | bool | None]] = (
                [("service", params["service"])] if params.get("service") else [])
            query += [("scope", s) for s in scopes]
            if cred is not None and cred.basic:
                headers["Authorization"] = cred.basic
            request = httpx.Request("GET", realm.copy_merge_params(httpx.QueryParams(query)), headers=headers)
        if deadline is not None:
            request.extensions[DEADLINE_KEY] = deadline
        try:
            response = inner.handle_request(request)
        except httpx.TransportError as exc:
            raise RegistryError(f"token request {shown}: cannot connect: {clean(exc) or type(exc).__name__}") \
                from None
        try:
            if response.status_code != 200:
                text, _ = error_text(response)
                # No status or codes: a token service's 404 must not read as "image not found".
                raise RegistryError(f"token request {shown}: {text}{self.hint()}")
            data = read_capped(response, MAX_TOKEN_ANSWER, f"the answer of token endpoint {shown}",
                               deadline=deadline_of(request))
        except AnswerTooLarge as exc:
            raise RegistryError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise RegistryError(f"token request {shown}: {clean(exc) or type(exc).__name__}") from None
        finally:
            response.close()
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError):
            raise RegistryError(f"token endpoint {shown} returned invalid JSON") from None
        token = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token endpoint {shown} returned no token")
        if len(token) > 64 * 1024 or not set(token) <= _TOKEN_CHARS:
            raise RegistryError(f"token endpoint {shown} returned a token that is not printable ASCII")
        return token


class AuthTransport(httpx.BaseTransport):
    """Adds the registry's credentials to requests to its own origin; answers 401 challenges."""

    def __init__(self, auth: RegistryAuth, inner: httpx.BaseTransport) -> None:
        self.auth = auth
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` with credentials when it goes to the registry itself."""
        request.headers.pop("Authorization", None)
        if Origin.of(request.url) != self.auth.origin:
            return self.inner.handle_request(request)  # credentials stay home
        scope = str(request.extensions.get(SCOPE_KEY, ""))
        header = self.auth.header(scope)
        if header:
            request.headers["Authorization"] = header
        response = self.inner.handle_request(request)
        if response.status_code != 401 or not replayable(request):
            return response
        challenge = response.headers.get("WWW-Authenticate", "")
        before = header
        try:
            answered = self.auth.answer(challenge, scope, self.inner, deadline_of(request))
        except BaseException:
            response.close()
            raise
        header = self.auth.header(scope)
        if not answered or not header or header == before:
            return response
        response.close()
        request.headers["Authorization"] = header
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()
