"""A large layer blob goes to the registry while it is still being written
(lifecycle/image/registry_stream.py), against the real docker-registry on 127.0.0.1: the upload
session receives chunks before the blob is complete, an aborted build deletes its session, and a
session lost mid-way falls back to an ordinary upload of the finished blob."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lifecycle.image import model as m
from lifecycle.image.registry import RegistryStore
from lifecycle.image.registry_stream import STREAM_AFTER
from tests.support.services import Registry

MIB = 1 << 20


def _uploads(registry: Registry, mark: int, repository: str) -> list[tuple[str, str, int]]:
    return [r for r in registry.requests_since(mark) if r[1].startswith(f"/v2/{repository}/blobs/")]


def _wait_for(registry: Registry, mark: int, repository: str, method: str) -> tuple[str, str, int]:
    """The first ``method`` request to the repository's blobs after ``mark`` (waits up to 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [r for r in _uploads(registry, mark, repository) if r[0] == method]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {method} to {repository} in the registry's log: {_uploads(registry, mark, repository)}")


def _write(writer: object, size: int, hasher: hashlib._Hash) -> None:
    for _ in range(size // MIB):
        data = os.urandom(MIB)
        hasher.update(data)
        writer.write(data)  # type: ignore[attr-defined]


def _stream_blob(registry: Registry, tmp_path: Path, repository: str, midway: Callable[[int], None],
                 rest: int) -> tuple[m.Descriptor, list[tuple[str, str, int]]]:
    """Write a blob past the stream threshold through a registry staging, wait for its first
    ``PATCH``, call ``midway(mark)``, write ``rest`` more bytes and commit. The registry must end
    up with the blob; returns its descriptor and the blob requests the registry saw."""
    store = RegistryStore(insecure_registries=[registry.host])
    mark = registry.mark()
    hasher = hashlib.sha256()
    try:
        with store.staging(f"{registry.host}/{repository}:latest", tmp_path) as staging:
            with staging.blob_writer() as writer:
                _write(writer, STREAM_AFTER + 16 * MIB, hasher)
                _wait_for(registry, mark, repository, "PATCH")  # the blob is not complete yet
                midway(mark)
                _write(writer, rest, hasher)
                desc = writer.commit(m.OCI_LAYER_GZIP)
            staging.blob_added(desc)
            staging.wait()  # type: ignore[attr-defined]
        assert desc.digest == "sha256:" + hasher.hexdigest()
        assert store.client(registry.host).blob_exists(repository, desc.digest) == desc.size
    finally:
        store.close()
    return desc, _uploads(registry, mark, repository)


def test_a_large_blob_is_uploaded_while_it_is_written(registry: Registry, tmp_path: Path) -> None:
    """Chunks reach the registry before the blob is committed; after the commit the registry has
    the blob (digest and size) and the upload used one session."""
    repository = "stream/while-written"

    def no_put_yet(mark: int) -> None:
        assert not [r for r in _uploads(registry, mark, repository) if r[0] == "PUT"]

    desc, uploads = _stream_blob(registry, tmp_path, repository, no_put_yet, 20 * MIB)
    assert [r[0] for r in uploads if r[0] == "POST"] == ["POST"], uploads
    puts = [r for r in uploads if r[0] == "PUT"]
    assert len(puts) == 1 and f"digest={desc.digest.replace(':', '%3A')}" in puts[0][1], puts
    assert all(r[2] < 300 for r in uploads), uploads


def test_an_aborted_blob_deletes_its_upload_session(registry: Registry, tmp_path: Path) -> None:
    """A build that fails after its blob began streaming leaves no upload session behind and no
    blob in the registry."""
    repository = "stream/aborted"
    store = RegistryStore(insecure_registries=[registry.host])
    mark = registry.mark()
    try:
        with store.staging(f"{registry.host}/{repository}:latest", tmp_path) as staging:
            try:
                with staging.blob_writer() as writer:
                    _write(writer, STREAM_AFTER + 16 * MIB, hashlib.sha256())
                    _wait_for(registry, mark, repository, "PATCH")
                    raise OSError("the build failed")
            except OSError:
                pass
        deleted = _wait_for(registry, mark, repository, "DELETE")
    finally:
        store.close()
    assert deleted[2] == 204, deleted
    assert not [r for r in _uploads(registry, mark, repository) if r[0] == "PUT"]


def test_a_session_lost_mid_stream_falls_back_to_an_ordinary_upload(registry: Registry, tmp_path: Path) -> None:
    """The registry forgets the session (its files deleted behind its back): the stream gives up, and the
    finished blob is uploaded again in a new session; the registry ends up with it."""
    repository = "stream/lost"

    def forget_sessions(_mark: int) -> None:
        shutil.rmtree(registry.data_dir / "docker" / "registry" / "v2" / "repositories" / repository / "_uploads")

    _, uploads = _stream_blob(registry, tmp_path, repository, forget_sessions, 40 * MIB)
    assert [r[0] for r in uploads].count("POST") == 2, uploads  # the stream's session, then the fallback's
    assert any(r[0] == "PATCH" and r[2] == 404 for r in uploads), uploads
    assert [r[2] for r in uploads if r[0] == "PUT"] == [201], uploads
