"""What each phase may still do as root: declared by its CLI module, applied by ``cli/_command``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Privileges:
    """A phase's privilege policy.

    ``chown``: flag names of the directories handed to the CNB user before the drop (as upstream's
    ``EnsureOwner``). ``keychain``: read registry credentials (``CNB_REGISTRY_AUTH``, the Docker
    config) as root, before the drop. ``daemon``: with ``-daemon``, connect to the Docker daemon's
    socket as root, before the drop (``lifecycle/priv/daemon.py``). ``layout_outputs``: with
    ``-oci``, hand the output image's layout directories (the image and its tags) to the CNB user.
    A phase started as root with a non-zero CNB user id drops to
    that user after this setup and before anything else; with user id 0 it stays root.
    """

    chown: tuple[str, ...] = ()
    keychain: bool = False
    daemon: bool = False
    layout_outputs: bool = False
