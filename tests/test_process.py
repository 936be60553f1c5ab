"""lifecycle.process: what a lifecycle program sets up in its own process."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import sys
from lifecycle import process
process.prepare()
assert process.tune_allocator(), "mallopt refused"
from lifecycle.image import model as m
from lifecycle.files import group
d = m.Descriptor.model_validate({"mediaType": m.OCI_LAYER_GZIP, "digest": "sha256:" + "0" * 64, "size": 3})
assert d.size == 3
try:
    m.Descriptor.model_validate({"digest": "sha256:00", "size": "many"})
except m.ValidationError as exc:
    print(m.validation_text(exc))
print(sorted(name for name in sys.modules if name.startswith(("importlib.metadata", "email"))))
"""


def test_models_validate_without_the_plugin_lookup() -> None:
    """pydantic builds and validates models; its plugin lookup (importlib.metadata, email) never runs."""
    res = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["size: Input should be a valid integer, unable to parse string as an integer",
                                       "[]"]


def test_without_prepare_pydantic_looks_for_plugins() -> None:
    """The check above can fail: without ``prepare`` the same models load importlib.metadata."""
    code = "import sys; from lifecycle.image import model as m; m.Descriptor(digest='d', size=1); " \
           "print('importlib.metadata' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.stdout.strip() == "True", res.stderr


_FRAGMENTED = """
import sys
from lifecycle import process
process.prepare()

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20

blocks = [bytes(2000) for _ in range(40_000)]  # 80 MB from malloc (over pymalloc's 512 bytes)
kept = blocks[::200]  # a few live blocks all over the heap: its top cannot shrink
del blocks
before = rss()
if sys.argv[1] == "release":
    process.release_free_memory()
print(before - rss())
"""


def test_release_free_memory_gives_freed_heap_pages_back() -> None:
    """Freed blocks between live ones stay in the process until ``release_free_memory``."""
    freed = {}
    for how in ("release", "keep"):
        res = subprocess.run([sys.executable, "-c", _FRAGMENTED, how], capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        freed[how] = int(res.stdout)
    assert freed["release"] > 50 and freed["keep"] < 5, freed
