"""Who the lifecycle runs as (D13, ``spec/trust-model.md``).

A phase started as root does its root-only setup first (:func:`prepare`: hand the dirs it writes to
the CNB user, read the registry keychain, connect to the Docker daemon), then drops to the CNB user for good
(:func:`~lifecycle.priv.user.drop_to`) before it reads or writes any tree a buildpack can write.
Only ``lifecycle.cli`` imports this package; phases never change who they are.
"""

from lifecycle.priv.daemon import DaemonSockets, connect_daemon
from lifecycle.priv.owner import ensure_owner, ensure_owner_below
from lifecycle.priv.policy import Privileges
from lifecycle.priv.user import BuildUser, PrivilegeError, build_user, drop_to, is_root

__all__ = ["BuildUser", "DaemonSockets", "PrivilegeError", "Privileges", "build_user", "connect_daemon", "drop_to",
           "ensure_owner", "ensure_owner_below", "is_root"]
