# The lifecycle image: /cnb/lifecycle/<phase> entry points backed by the Python package.
# See spec/image.md.
#
# Build (from the repo root; `make image` does all of it, offline once `make image-inputs` ran):
#   make image-inputs                                   # dependency wheels (dist/wheels), base rootfs tarball
#   tests/image_build/make_wheels.sh --package-only     # the package wheel, from the work tree, offline
#   tests/image_build/make_base.sh --import-only        # lifecycle-base:bookworm from the cached tarball
#   docker build --build-arg BASE_IMAGE=lifecycle-base:bookworm -t cnb-lifecycle:dev .
# Without the build arg the base is python:3.11-slim (pulled from Docker Hub). Any base with
# python3 3.11 and its venv module works (the wheels are cp311 / py3). The build itself never
# reaches a package index: pip installs from the context's wheels only.
#
# One COPY and one RUN on purpose: each step costs a full copy of the root filesystem on
# storage drivers such as vfs (the test daemon's): about 10-30 s each here.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# The context is only dist/wheels/*.whl, cnb/ and build/launcher/launcher (`make launcher`; see .dockerignore).
COPY . /tmp/lifecycle-context

# Installed from the wheels only: no index, no network during the build. /cnb is what the repo's
# cnb/ holds: phase entry points (symlinks to one dispatcher), sample
# buildpacks and order; the app images' launcher is the static binary `make launcher` built (its one
# recipe and set of flags), copied as is. The dispatcher runs on the venv's interpreter, whatever PATH a platform
# gives the phase.
RUN set -eu; \
    ctx=/tmp/lifecycle-context; \
    python3 -m venv /opt/lifecycle; \
    /opt/lifecycle/bin/python3 -m pip install --no-index --no-cache-dir --disable-pip-version-check \
        --no-compile --find-links "$ctx/dist/wheels" cnb-lifecycle; \
    /opt/lifecycle/bin/python3 -m compileall -q /opt/lifecycle/lib; \
    mv "$ctx/cnb" /cnb; \
    mv "$ctx/build/launcher/launcher" /cnb/lifecycle/launcher; \
    rm -rf "$ctx"; \
    sed -i '1s|^#!.*|#!/opt/lifecycle/bin/python3|' /cnb/lifecycle/lifecycle; \
    chmod 0755 /cnb /cnb/lifecycle /cnb/lifecycle/lifecycle /cnb/lifecycle/launcher; \
    /cnb/lifecycle/analyzer -version
# No ENV/WORKDIR/USER steps: platforms call /cnb/lifecycle/<phase> by path, run phases as root
# or as CNB_USER_ID (the phases drop privileges themselves), and each step would cost a copy.
