# Two commands on a fresh machine: `make demo` and `make test`. Each first runs `make install`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install venv tools launcher test lint type demo bench image image-inputs frozen lifecycle-tarball clean

# Everything the tests, the demo and the benchmark need, only what is missing (tests/tools/setup.sh):
# the Debian packages (root), the pinned Go tools, .venv, the image-build inputs and the fresh-machine
# check's inputs, and the launcher (its recipe is below). A run with nothing to install prints one line.
install:
	@tests/tools/setup.sh

# Only .venv (the package, editable, and its test tools): enough for `make lint`.
venv:
	@tests/tools/setup.sh venv

# The app images' launcher (launcher/, Go, no dependencies): one recipe and one set of flags, also
# what the Dockerfile copies. Static (no cgo), no paths, VCS stamp or build id in the binary, the
# machine's toolchain only: the same source and toolchain give the same bytes (spec/launcher.md).
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
LAUNCHER := build/launcher/launcher
LAUNCHER_SRC := $(shell find launcher -name '*.go' -o -name go.mod)

launcher: $(LAUNCHER)

$(LAUNCHER): $(LAUNCHER_SRC)
	@mkdir -p $(@D)
	cd launcher && GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false \
		-ldflags='-s -w -buildid=' -o ../$(LAUNCHER).tmp . && mv -f ../$(LAUNCHER).tmp ../$(LAUNCHER)

# The pinned Go tools (upstream lifecycle, pack, oras, notation, crane): tests/tools/go-tools.txt.
tools:
	tests/tools/install.sh

test: install
	$(VENV)/bin/pytest -n 2 -q

lint: venv
	$(VENV)/bin/ruff check lifecycle tests bench samples packaging
	$(VENV)/bin/mypy

demo: install
	$(PY) samples/demo.py

bench: install frozen
	$(PY) bench/export.py
	$(PY) bench/launch.py
	$(PY) bench/startup.py
	$(PY) bench/daemon.py

# What the lifecycle image is built from (part of `make install`): dependency wheels into dist/wheels
# (pip's index) and the debootstrap'd base rootfs tarball (Debian mirror; needs root and debootstrap;
# cached in $${LIFECYCLE_BASE_CACHE:-/var/cache/lifecycle-base}). tests/image_build builds the image
# offline from these; it fails when they are missing.
image-inputs:
	@tests/tools/setup.sh image-inputs

# The phases frozen into one executable (build/frozen/lifecycle, PyInstaller from the `freeze` extras)
# plus symlinks, and the tarball pack's `builder create` takes, with the launcher:
# dist/lifecycle-<version>+linux.x86-64.tgz (spec/image.md).
frozen: venv
	packaging/freeze.sh $(PY) build/frozen

lifecycle-tarball: frozen launcher
	$(PY) packaging/dist.py tarball build/frozen $(LAUNCHER) dist

# cnb-lifecycle:dev in the default daemon, offline: /cnb/lifecycle from the lifecycle tarball, the
# labels pack reads, the base lifecycle-base:bookworm imported from the cached debootstrap tarball.
# BASE_IMAGE=<image> builds on another base (any glibc 2.36+ image, e.g. debian:bookworm-slim).
image: image-inputs lifecycle-tarball
	$(if $(BASE_IMAGE),,tests/image_build/make_base.sh --import-only)
	packaging/build_image.sh dist/lifecycle-$$($(PY) packaging/dist.py version)+linux.x86-64.tgz \
		cnb-lifecycle:dev $(or $(BASE_IMAGE),lifecycle-base:bookworm)

clean:
	rm -rf $(VENV) demo-oci .pytest_cache build
