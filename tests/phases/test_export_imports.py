"""What a cold export to a layout loads: neither the tar extractor (tarfile) nor the cache's, the
registry's or the Docker daemon's modules, none of which it uses. Each is memory for the whole run
(README, Speed); they are imported where they are needed instead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_export_digests import make_inputs
from tests.conftest import BIN, base_env

_WATCH = r"""
import atexit, json, sys
out, program, args = sys.argv[1], sys.argv[2], sys.argv[3:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = [program, *args]
from lifecycle.cli.main import main
main()
"""

NOT_LOADED = ("tarfile", "socket", "lifecycle.archive", "lifecycle.phases.cache_export", "lifecycle.image.registry",
              "lifecycle.image.daemon", "httpx", "ssl", "docker")


def test_a_cold_layout_export_loads_no_extractor_cache_registry_or_daemon_module(tmp_path: Path) -> None:
    make_inputs(tmp_path)
    env = base_env(PATH=f"{BIN}:/usr/bin:/bin")
    common = ["-oci", "-oci-dir", str(tmp_path / "oci"), "-layers", str(tmp_path / "layers")]
    analyzed = subprocess.run([str(BIN / "analyzer"), *common, "-run-image", "busybox", "my-app"], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
    out = tmp_path / "modules.json"
    res = subprocess.run([sys.executable, "-c", _WATCH, str(out), "exporter", *common, "-app", str(tmp_path / "app"),
                          "-launcher", str(tmp_path / "launcher"), "my-app"], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "*** Images (sha256:" in res.stdout
    loaded = set(json.loads(out.read_text()))
    assert "lifecycle.layers.blob" in loaded  # the watch saw the export's modules
    assert sorted(loaded & set(NOT_LOADED)) == []
