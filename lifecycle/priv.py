"""Run buildpack executables as the build user.

Upstream's detector and builder refuse to run as root. This lifecycle instead runs them as root
only when asked to (``-uid 0``) and otherwise drops privileges for the buildpack processes alone:
when the lifecycle runs as root and ``-uid``/``CNB_USER_ID`` names a non-root user,
``bin/detect`` and ``bin/build`` run as ``uid``/``gid`` with no supplementary groups, and the
directories they write are chowned to that user first. The lifecycle itself keeps its privileges
(it writes ``group.toml``, ``plan.toml`` and ``metadata.toml``).

Not running as root: buildpacks run as the current user, whatever ``-uid`` says.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunAs", "chown_tree", "run_as_for"]

# HOME for a uid without a passwd entry: world-writable, so tools that write ~/.cache still work.
FALLBACK_HOME = "/tmp"


@dataclass(frozen=True)
class RunAs:
    """The user buildpack processes run as."""

    uid: int
    gid: int
    home: str
    user: str

    def popen_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`subprocess.Popen` that switch to this user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def apply_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with ``HOME`` (and ``USER`` when known) of this user."""
        out = dict(environ)
        out["HOME"] = self.home
        if self.user:
            out["USER"] = self.user
        return out


def run_as_for(uid: int, gid: int, *, euid: int | None = None) -> RunAs | None:
    """The user to drop to, or None to run buildpacks as the current user.

    Drops only when the lifecycle runs as root (``euid`` 0) and ``uid`` is not 0.
    """
    current = os.geteuid() if euid is None else euid
    if current != 0 or uid == 0:
        return None
    try:
        entry = pwd.getpwuid(uid)
        home, user = entry.pw_dir or FALLBACK_HOME, entry.pw_name
    except KeyError:
        home, user = FALLBACK_HOME, ""
    return RunAs(uid=uid, gid=gid, home=home, user=user)


def chown_tree(path: Path, run_as: RunAs | None, *, recursive: bool = True) -> None:
    """Give ``path`` (and, when ``recursive``, everything under it) to ``run_as``; symlinks not followed."""
    if run_as is None:
        return
    path = Path(path)

    def own(p: str) -> None:
        st = os.lstat(p)
        if st.st_uid != run_as.uid or st.st_gid != run_as.gid:
            os.chown(p, run_as.uid, run_as.gid, follow_symlinks=False)

    if not path.exists():
        return
    own(str(path))
    if not recursive or not path.is_dir() or path.is_symlink():
        return
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            own(os.path.join(root, name))
