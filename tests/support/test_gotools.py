"""The pinned Go tools `make install` builds are there, run, and are the pinned versions."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.gotools import go_tool, pins

# How each tool prints its version (upstream's launcher has no such flag: see the test below it).
VERSION_ARGS = {"lifecycle": ["-version"], "pack": ["version"], "oras": ["version"], "notation": ["version"],
                "crane": ["version"]}


@pytest.mark.parametrize("name", sorted(VERSION_ARGS))
def test_pinned_tool_reports_its_version(name: str) -> None:
    out = subprocess.run([go_tool(name), *VERSION_ARGS[name]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert pins()[name].version.removeprefix("v") in out.stdout


def test_upstream_launcher_runs() -> None:
    """Without a Platform API the launcher stops with upstream's message and exit code 11."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNB_")}
    out = subprocess.run([go_tool("launcher")], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 11
    assert "failed to get platform API version" in out.stderr + out.stdout
