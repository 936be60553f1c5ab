"""Registry credentials: ``CNB_REGISTRY_AUTH`` first, then the Docker config file's ``auths``.

``CNB_REGISTRY_AUTH`` is a JSON object mapping a registry (``host[:port]``) to an ``Authorization``
header value, as upstream's env keychain reads it: ``Basic <base64 user:password>`` is decoded into
credentials (usable both for basic auth and for the bearer-token exchange); any other value
(``Bearer <token>``, ...) is sent as it is.

The Docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``) contributes
``auths`` entries with ``auth`` (base64 ``user:password``), ``username``/``password`` or
``identitytoken``. Credential helpers (``credsStore``, ``credHelpers``) are not run.

Secrets never reach a message: errors about either source name the source and the entry's
position, never a key's or a value's text, and :class:`Credential` hides its secrets from ``repr``.
A value that could not be sent as a header (control characters, non-ASCII, over
:data:`MAX_HEADER` bytes) is refused as input (exit 3) instead of failing later inside httpx with the
value in its message. The Docker config is read only when it is a regular file of at most
:data:`MAX_CONFIG` bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.errors import InputError
from lifecycle.fs.tree import read_file

DOCKER_HUB = "index.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
MAX_HEADER = 16 * 1024
MAX_CONFIG = 4 * 1024 * 1024


@dataclass(frozen=True)
class Credential:
    """What we know for one registry: user/password, or a ready ``Authorization`` value."""

    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    header: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    @property
    def basic(self) -> str | None:
        """``Basic <base64>`` when a username and password are known."""
        if not self.username and not self.password:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def normalize_registry(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``index.docker.io``; ``http://host:5000/x`` -> ``host:5000``."""
    text = key.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    text = text.split("/", 1)[0].lower()
    return DOCKER_HUB if text in _HUB_ALIASES else text


def _decode_basic(value: str) -> tuple[str, str] | None:
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


def _header_ok(value: str) -> bool:
    """Whether ``value`` can go in an HTTP header as is: visible ASCII and spaces, bounded."""
    return 0 < len(value) <= MAX_HEADER and all(" " <= ch <= "~" for ch in value)


def _from_header(value: str) -> Credential:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "basic":
        pair = _decode_basic(rest)
        if pair is not None:
            return Credential(username=pair[0], password=pair[1])
    return Credential(header=value.strip())


def parse_registry_auth(text: str) -> dict[str, Credential]:
    """Parse ``CNB_REGISTRY_AUTH``; malformed JSON is an input error (exit 3), as upstream."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InputError("failed to parse CNB_REGISTRY_AUTH: not a JSON object") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError("failed to parse CNB_REGISTRY_AUTH: want a JSON object of registry to "
                         "Authorization header value")
    out: dict[str, Credential] = {}
    for position, (key, value) in enumerate(data.items(), 1):
        if not _header_ok(value.strip()):
            # Neither the key nor the value is shown: either may be a secret put in the wrong place.
            raise InputError(f"failed to parse CNB_REGISTRY_AUTH: entry {position} is not a usable "
                             f"Authorization header value (printable ASCII, at most {MAX_HEADER} bytes)")
        out[normalize_registry(key)] = _from_header(value)
    return out


def docker_config_path(environ: Mapping[str, str]) -> Path | None:
    """``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json``."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker" / "config.json" if home else None


def parse_docker_config(path: Path | None) -> dict[str, Credential]:
    """The ``auths`` of a Docker config file; a missing or unreadable file gives nothing."""
    text = _read_small(path) if path is not None else None
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    auths = data.get("auths") if isinstance(data, dict) else None
    out: dict[str, Credential] = {}
    if not isinstance(auths, dict):
        return out
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        if entry.get("auth"):
            pair = _decode_basic(str(entry["auth"]))
            if pair is not None:
                user, password = pair
        token = str(entry.get("identitytoken") or "")
        if user or password or token:
            out.setdefault(normalize_registry(str(key)), Credential(username=user, password=password,
                                                                   identity_token=token))
    return out


def _read_small(path: Path) -> bytes | None:
    """The file's bytes when it is a regular file of at most :data:`MAX_CONFIG` bytes, else None
    (a FIFO or device in its place neither blocks nor is read: ``fs.read_file``)."""
    try:
        return read_file(path, MAX_CONFIG)
    except OSError:
        return None


class Keychain:
    """Credentials by registry; ``CNB_REGISTRY_AUTH`` wins over the Docker config."""

    def __init__(self, entries: Mapping[str, Credential] | None = None) -> None:
        self.entries = dict(entries or {})

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Keychain:
        """Build from ``CNB_REGISTRY_AUTH`` and the Docker config named by ``environ``."""
        entries = parse_docker_config(docker_config_path(environ))
        entries.update(parse_registry_auth(environ.get("CNB_REGISTRY_AUTH", "")))
        return cls(entries)

    def get(self, registry: str) -> Credential | None:
        """The credential for ``registry`` (``host[:port]``), if any."""
        return self.entries.get(normalize_registry(registry))
