"""OCI 1.1 referrers (lifecycle/image/referrers.py) saved by the layout and registry stores, read
back by oras: ``oras discover`` lists them, ``oras pull`` returns the files' bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lifecycle.image import model as m
from lifecycle.image import referrers as r
from lifecycle.image.layout import Layout
from lifecycle.image.registry import RegistryStore
from lifecycle.image.store import LayoutStore, Saved, Staging, temporary_staging
from tests.conftest import BUSYBOX, BUSYBOX_MANIFEST
from tests.support.fake_registry import FakeServer, Reply, Seen, Storage
from tests.support.gotools import go_tool
from tests.support.services import Registry

FILES = {
    "acme_one/run/sbom.cdx.json": b'{"bomFormat":"CycloneDX","components":[{"name":"run"}]}\n',
    "acme_one/sbom.cdx.json": b'{"bomFormat":"CycloneDX"}\n',
    "acme_one/run/sbom.spdx.json": b'{"spdxVersion":"SPDX-2.3"}\n',
    "acme_two/z/sbom.syft.json": b'{"artifacts":[]}\n',
    "acme_two/z/notes.txt": b"not an SBOM\n",
}


def oras(*args: str, code: int = 0) -> str:
    res = subprocess.run([str(go_tool("oras")), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=120)
    assert res.returncode == code, f"oras {' '.join(args)}:\n{res.stdout}"
    return res.stdout


def busybox_subject() -> m.Descriptor:
    image = Layout(BUSYBOX).image("latest")
    return r.subject_of(image.manifest_digest, image.manifest_size, m.DOCKER_MANIFEST)


def discovered(*args: str) -> dict[str, str]:
    """artifact digest -> artifactType of the direct referrers ``oras discover`` lists."""
    out = json.loads(oras("discover", "--format", "json", "--depth", "1", *args))
    return {d["digest"]: d["artifactType"] for d in out.get("referrers") or []}


def test_one_artifact_per_format_reproducible() -> None:
    subject = busybox_subject()
    artifacts = r.sbom_artifacts(FILES, subject)
    assert [a.artifact_type for a in artifacts] == list(r.SBOM_FORMATS.values())
    cdx = json.loads(artifacts[0].manifest_bytes())
    assert cdx["artifactType"] == "application/vnd.cyclonedx+json"
    assert cdx["config"] == {"mediaType": r.EMPTY_MEDIA, "digest": r.EMPTY_CONFIG.descriptor.digest, "size": 2}
    assert cdx["subject"] == {"mediaType": m.DOCKER_MANIFEST, "digest": BUSYBOX_MANIFEST, "size": subject.size}
    assert [layer["annotations"][r.TITLE] for layer in cdx["layers"]] == ["acme_one/run/sbom.cdx.json",
                                                                          "acme_one/sbom.cdx.json"]
    again = r.sbom_artifacts(dict(reversed(list(FILES.items()))), subject)
    assert [a.descriptor for a in again] == [a.descriptor for a in artifacts]
    assert r.sbom_artifacts({"a/notes.txt": b"x"}, subject) == []


def test_layout_lists_them_untagged_once_and_tags_keep_them(tmp_path: Path) -> None:
    layout_dir = tmp_path / "busybox"
    shutil.copytree(BUSYBOX, layout_dir)
    subject = busybox_subject()
    artifacts = r.sbom_artifacts(FILES, subject)
    store = LayoutStore(tmp_path)
    announced: list[str] = []
    saved = Saved(subject.digest, subject.size, [str(layout_dir)])
    store.attach(Staging(Layout(layout_dir)), saved, artifacts, announced.append)
    assert announced == [f"{layout_dir}@{a.descriptor.digest}" for a in artifacts]
    found = discovered("--oci-layout", f"{layout_dir}@{BUSYBOX_MANIFEST}")
    assert found == {a.descriptor.digest: a.artifact_type for a in artifacts}
    # oras pull returns the files under their titles, byte for byte.
    out = tmp_path / "pulled"
    oras("pull", "--oci-layout", f"{layout_dir}@{artifacts[0].descriptor.digest}", "-o", str(out))
    assert (out / "acme_one/run/sbom.cdx.json").read_bytes() == FILES["acme_one/run/sbom.cdx.json"]
    assert (out / "acme_one/sbom.cdx.json").read_bytes() == FILES["acme_one/sbom.cdx.json"]
    # Attaching again changes nothing; a tag saved later keeps them; the tag still selects the image.
    before = (layout_dir / "index.json").read_bytes()
    store.attach(Staging(Layout(layout_dir)), saved, artifacts, announced.append)
    assert (layout_dir / "index.json").read_bytes() == before
    image = Layout(layout_dir).image("latest")
    Layout(layout_dir).set_tag(image.descriptor, "v2")
    assert discovered("--oci-layout", f"{layout_dir}:v2") == found
    assert Layout(layout_dir).image("latest").manifest_digest == BUSYBOX_MANIFEST


def _push_busybox(store: RegistryStore, reference: str) -> None:
    store.push_layout_image(BUSYBOX, "latest", reference)


def test_registry_without_referrers_api_gets_the_fallback_tag(registry: Registry, tmp_path: Path) -> None:
    ref = registry.ref("referrers/busybox", "v1")
    store = RegistryStore(insecure_registries=[registry.host])
    try:
        _push_busybox(store, ref)
        subject = busybox_subject()
        artifacts = r.sbom_artifacts(FILES, subject)
        saved = Saved(subject.digest, subject.size, [ref])
        with temporary_staging(tmp_path, ".t-") as staging:
            store.attach(staging, saved, artifacts, lambda _: None)
        found = discovered("--plain-http", ref)
        assert found == {a.descriptor.digest: a.artifact_type for a in artifacts}
        tag = registry.ref("referrers/busybox", r.fallback_tag(BUSYBOX_MANIFEST))
        index = json.loads(oras("manifest", "fetch", "--plain-http", tag))
        assert [d["digest"] for d in index["manifests"]] == [a.descriptor.digest for a in artifacts]
        out = tmp_path / "pulled"
        spdx = artifacts[1]
        oras("pull", "--plain-http", f"{registry.host}/referrers/busybox@{spdx.descriptor.digest}", "-o", str(out))
        assert (out / "acme_one/run/sbom.spdx.json").read_bytes() == FILES["acme_one/run/sbom.spdx.json"]
        # Again: the fallback index is not rewritten.
        mark = registry.mark()
        with temporary_staging(tmp_path, ".t-") as staging:
            store.attach(staging, saved, artifacts, lambda _: None)
        assert not [q for q in registry.requests_since(mark) if q[0] == "PUT" and "sha256-" in q[1]]
        assert json.loads(oras("manifest", "fetch", "--plain-http", tag)) == index
    finally:
        store.close()


def test_registry_with_referrers_api_gets_no_fallback_tag(tmp_path: Path) -> None:
    """A registry answering ``OCI-Subject`` indexes the subject itself: no ``sha256-<hex>`` tag."""
    storage = Storage()
    server = FakeServer(storage=storage).start()
    subject = busybox_subject()

    def referrers_api(seen: Seen) -> Reply | None:
        if seen.method == "PUT" and "/manifests/sha256:" in seen.path:
            digest = seen.path.rsplit("/", 1)[1]
            return Reply(201, {"Docker-Content-Digest": digest, "OCI-Subject": subject.digest})
        return None

    server.rules.append(referrers_api)
    store = RegistryStore(insecure_registries=[server.host])
    try:
        ref = f"{server.host}/app:latest"
        artifacts = r.sbom_artifacts(FILES, subject)
        with temporary_staging(tmp_path, ".t-") as staging:
            store.attach(staging, Saved(subject.digest, subject.size, [ref]), artifacts, lambda _: None)
        puts = [s.path for s in server.seen() if s.method == "PUT" and "/manifests/" in s.path]
        assert puts == [f"/v2/app/manifests/{a.descriptor.digest}" for a in artifacts]
        blobs = {d for a in artifacts for d in (b.descriptor.digest for b in a.blobs)}
        assert blobs <= set(storage.blobs)
    finally:
        store.close()
        server.stop()


@pytest.mark.parametrize("existing", ["none", "other-referrer"])
def test_fallback_index_keeps_other_referrers(existing: str) -> None:
    other = m.Descriptor(mediaType=m.OCI_MANIFEST, digest="sha256:" + "1" * 64, size=10, artifactType="x/y")
    index = m.Index(manifests=[other]) if existing != "none" else None
    desc = r.sbom_artifacts(FILES, busybox_subject())[0].descriptor
    updated = r.with_referrer(index, desc)
    assert updated is not None
    assert [d.digest for d in updated.manifests] == ([other.digest] if index else []) + [desc.digest]
    assert r.with_referrer(updated, desc) is None
