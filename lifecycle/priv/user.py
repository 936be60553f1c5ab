"""The CNB user and the one-way switch to it."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass

# HOME for a uid without a passwd entry: world-writable, so tools that write ~/.cache still work.
FALLBACK_HOME = "/tmp"


class PrivilegeError(Exception):
    """Dropping to the CNB user did not happen or did not stick."""


@dataclass(frozen=True)
class BuildUser:
    """The user buildpacks (and, after the drop, the phases) run as."""

    uid: int
    gid: int
    home: str
    name: str

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with this user's ``HOME`` (and ``USER`` when it has a passwd entry); the
        process environment itself is never changed."""
        out = dict(environ)
        out["HOME"] = self.home
        if self.name:
            out["USER"] = self.name
        return out


def build_user(uid: int, gid: int) -> BuildUser:
    """The user ``uid``/``gid`` with its passwd HOME and name (``/tmp`` and no name without one)."""
    try:
        entry = pwd.getpwuid(uid)
        return BuildUser(uid, gid, entry.pw_dir or FALLBACK_HOME, entry.pw_name)
    except KeyError:
        return BuildUser(uid, gid, FALLBACK_HOME, "")


def is_root() -> bool:
    """Whether the process runs with effective uid 0."""
    return os.geteuid() == 0


def drop_to(user: BuildUser) -> None:
    """Become ``user`` for good: no supplementary groups, then real/effective/saved gid, then uid.

    The order matters (after setresuid we could no longer change groups), and the result is checked
    rather than trusted: a partial switch raises :class:`PrivilegeError`.
    """
    try:
        os.setgroups([])
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as exc:
        raise PrivilegeError(f"failed to run as user {user.uid}:{user.gid}: {exc.strerror or exc}") from None
    if os.getresuid() != (user.uid,) * 3 or os.getresgid() != (user.gid,) * 3 or os.getgroups() not in (
            [], [user.gid]):
        raise PrivilegeError(f"failed to run as user {user.uid}:{user.gid}: ids did not change")
