"""Text that a registry or a daemon chose, made safe to print on one log line.

Every string a server provides (error messages, reason phrases, header values, URLs, media
types) passes through :func:`clean` or :func:`clean_url` before it reaches an exception message:
control characters (newlines, ``ESC`` of terminal escape sequences, NUL, bidi overrides) become
visible ``\\xNN`` / ``\\uNNNN`` escapes, so a server cannot forge extra output lines or drive the
terminal, and long text is cut. URLs lose their userinfo (``user:password@``), query and fragment.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit, urlunsplit

LIMIT = 300


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(text: object, limit: int = LIMIT) -> str:
    """``text`` with control and format characters escaped, cut to about ``limit`` characters."""
    raw = str(text)
    cut = len(raw) > limit
    out = []
    for ch in raw[:limit]:
        # Cc (controls, ESC, NUL), Cf (bidi overrides, zero-width), Zl/Zp (line separators), surrogates...
        category = unicodedata.category(ch)
        out.append(_escape(ch) if category[0] == "C" or category in ("Zl", "Zp") else ch)
    return "".join(out) + ("..." if cut else "")


def clean_url(url: object) -> str:
    """A URL for messages: no userinfo, query or fragment; escaped like :func:`clean`."""
    raw = str(url)
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        if ":" in (parts.hostname or "") and not host.startswith("["):
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port is not None else "")
        raw = urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        raw = raw.split("?", 1)[0].split("#", 1)[0]
        if "@" in raw:
            raw = raw.rsplit("@", 1)[1]
    return clean(raw)
