"""`make demo`: build samples/apps/hello with the creator into ./demo-oci on the busybox run image,
then show what was made; run it when a Docker engine is reachable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OCI = REPO / "demo-oci"
WORK = REPO / "demo-work"
IMAGE = "sample-hello"


def main() -> int:
    layers, app, cache = WORK / "layers", WORK / "workspace", WORK / "cache"
    shutil.rmtree(layers, ignore_errors=True)
    shutil.rmtree(app, ignore_errors=True)
    for d in (layers, cache):
        d.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "samples" / "apps" / "hello", app)
    run_dir = OCI / "index.docker.io" / "library" / "busybox" / "latest"
    if not run_dir.exists():
        shutil.copytree(REPO / "tests" / "fixtures" / "layout-repo" / "index.docker.io" / "library" / "busybox"
                        / "latest", run_dir)
    env = {**os.environ, "CNB_PLATFORM_API": "0.15", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "creator"), "-oci", "-oci-dir", str(OCI), "-layers", str(layers), "-app", str(app),
           "-cache-dir", str(cache), "-buildpacks", str(REPO / "cnb" / "buildpacks"),
           "-order", str(REPO / "cnb" / "order.toml"), "-launcher", str(REPO / "build" / "launcher" / "launcher"),
           "-run-image", "busybox", IMAGE]
    print("$ " + " ".join(cmd[:1] + [a.replace(str(REPO) + "/", "") for a in cmd[1:]]), flush=True)
    code = subprocess.run(cmd, env=env).returncode
    if code != 0:
        return code
    report = tomllib.loads((layers / "report.toml").read_text())["image"]
    out_dir = Path(report["tags"][0])
    manifest = json.loads((out_dir / "blobs" / "sha256" / report["digest"].split(":")[1]).read_bytes())
    config = json.loads((out_dir / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    print("\n=== What was made")
    print(f"tags:     {', '.join(report['tags'])}")
    print(f"digest:   {report['digest']}")
    print(f"entrypoint: {config['config']['Entrypoint']}")
    print("layers:")
    for desc, diff, hist in zip(manifest["layers"], config["rootfs"]["diff_ids"],
                                [h for h in config["history"]], strict=False):
        present = "" if (out_dir / "blobs" / "sha256" / desc["digest"].split(":")[1]).exists() else " (missing)"
        print(f"  {desc['digest'][:19]}  {desc['size']:>8} B  {hist.get('created_by', '')[:60]}{present}")
        del diff
    docker_host = os.environ.get("DOCKER_HOST") or ("unix:///var/run/docker.sock"
                                                     if Path("/var/run/docker.sock").exists() else "")
    private = None
    if not _engine_up(docker_host) and shutil.which("dockerd") and os.geteuid() == 0:
        private = _start_private_dockerd()
        docker_host = private[0] if private else ""
    try:
        if _engine_up(docker_host) and shutil.which("skopeo"):
            print(f"\n=== Running it with Docker ({docker_host})", flush=True)
            subprocess.run(["skopeo", "copy", "--dest-daemon-host", docker_host, f"oci:{out_dir}:latest",
                            f"docker-daemon:{IMAGE}:latest"], check=True, stdout=subprocess.DEVNULL)
            for extra in ([], ["--entrypoint", "/cnb/process/worker"]):
                print(f"$ docker run --rm {' '.join(extra)} {IMAGE}".replace("  ", " "), flush=True)
                subprocess.run(["docker", "-H", docker_host, "run", "--rm", "--network", "none", *extra,
                                f"{IMAGE}:latest"], check=False)
        else:
            print("\nNo Docker engine reachable: to run it, load it with "
                  f"`skopeo copy oci:{out_dir}:latest docker-daemon:{IMAGE}:latest` and `docker run {IMAGE}`.")
    finally:
        if private:
            private[1].terminate()
            private[1].wait(timeout=30)
            shutil.rmtree(private[2], ignore_errors=True)
    return 0


def _engine_up(host: str) -> bool:
    return bool(host) and shutil.which("docker") is not None and subprocess.run(
        ["docker", "-H", host, "info"], capture_output=True).returncode == 0


def _start_private_dockerd() -> tuple[str, subprocess.Popen[bytes], Path] | None:
    """A throwaway dockerd (vfs, no networking) on a private socket, as the tests use."""
    import tempfile
    import time

    base = Path(tempfile.mkdtemp(prefix="demo-dk-", dir="/tmp"))
    host = f"unix://{base}/docker.sock"
    proc = subprocess.Popen(["dockerd", "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
                             "--bridge=none", "--host", host, "--data-root", str(base / "data"),
                             "--exec-root", str(base / "exec"), "--pidfile", str(base / "dockerd.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        if _engine_up(host):
            print(f"(started a private dockerd on {host} for the demo)")
            return host, proc, base
        time.sleep(0.1)
    proc.terminate()
    return None


if __name__ == "__main__":
    sys.exit(main())
