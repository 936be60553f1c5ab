# The lifecycle image: /cnb/lifecycle as the lifecycle tarball carries it (the phases frozen into one
# executable, symlinks, the launcher), plus the sample buildpacks and order. See spec/image.md.
#
# Build it with packaging/build_image.sh (`make image` does, offline): it stages the context (the
# tarball as lifecycle.tgz, cnb/buildpacks, cnb/order.toml, this file) and passes the labels pack
# reads (io.buildpacks.lifecycle.version, io.buildpacks.lifecycle.apis) with `docker build --label`.
# The phases need only glibc (2.36 or newer) and a writable /tmp: no Python in the image is used.
# Without the build arg the base is debian:bookworm-slim (pulled from Docker Hub); `make image` and
# the tests use lifecycle-base:bookworm, imported from the cached debootstrap tarball.
#
# One COPY and one RUN, and labels from the command line, on purpose: each step costs a full copy of
# the root filesystem on storage drivers such as vfs (the test daemon's).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

COPY . /tmp/lifecycle-context

# /cnb/lifecycle gets exactly the tarball's lifecycle/ folder, as pack puts it into a builder.
RUN set -eu; \
    ctx=/tmp/lifecycle-context; \
    mkdir -p /cnb; \
    tar -xzf "$ctx/lifecycle.tgz" -C /cnb --no-same-owner lifecycle; \
    mv "$ctx/cnb/buildpacks" "$ctx/cnb/order.toml" /cnb/; \
    rm -rf "$ctx"; \
    chmod 0755 /cnb /cnb/lifecycle; \
    /cnb/lifecycle/analyzer -version
# No ENTRYPOINT/ENV/WORKDIR/USER steps: platforms call /cnb/lifecycle/<phase> by path, run phases as
# root or as CNB_USER_ID (the phases drop privileges themselves), and each step would cost a copy.
