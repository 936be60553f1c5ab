# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install tools test lint type demo bench image image-inputs frozen lifecycle-tarball clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,freeze]'
	touch $(STAMP)

# The pinned Go tools (upstream lifecycle, pack, oras, notation, crane): tests/tools/go-tools.txt.
tools:
	tests/tools/install.sh

test: install tools image-inputs
	$(VENV)/bin/pytest -n 2 -q

lint: install
	$(VENV)/bin/ruff check lifecycle tests bench samples packaging
	$(VENV)/bin/mypy

demo: install
	$(PY) samples/demo.py

bench: install tools
	$(PY) bench/export.py

# The phases frozen into one executable (build/frozen/lifecycle, PyInstaller) plus symlinks, and the
# tarball pack's `builder create` takes: dist/lifecycle-<version>+linux.x86-64.tgz (spec/image.md).
LAUNCHER ?= cnb/lifecycle/launcher
frozen: install
	packaging/freeze.sh $(PY) build/frozen

lifecycle-tarball: frozen
	$(PY) packaging/dist.py tarball build/frozen $(LAUNCHER) dist

# What the lifecycle image is built from, fetched here (install-step work, the only network use):
# dependency wheels into dist/wheels (pip's index) and the debootstrap'd base rootfs tarball
# (Debian mirror; needs root and debootstrap; cached in $${LIFECYCLE_BASE_CACHE:-/var/cache/lifecycle-base}).
# tests/image_build builds the image offline from these; it fails when they are missing.
image-inputs: install
	tests/image_build/make_wheels.sh $(PY) dist/wheels
	tests/image_build/make_base.sh --tarball-only

# cnb-lifecycle:dev in the default daemon, offline from image-inputs: the package wheel is rebuilt
# from the work tree, the base is lifecycle-base:bookworm imported from the cached tarball.
# BASE_IMAGE=<image> builds on another base (any python3 3.11 with venv, e.g. python:3.11-slim).
image: image-inputs
	tests/image_build/make_wheels.sh --package-only $(PY) dist/wheels
	$(if $(BASE_IMAGE),,tests/image_build/make_base.sh --import-only)
	DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=$(or $(BASE_IMAGE),lifecycle-base:bookworm) \
		-t cnb-lifecycle:dev .

clean:
	rm -rf $(VENV) demo-oci .pytest_cache build
