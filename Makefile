# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint type demo bench image clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: install
	$(VENV)/bin/pytest -n 2 -q

lint: install
	$(VENV)/bin/ruff check lifecycle tests bench
	$(VENV)/bin/mypy

demo: install
	$(PY) samples/demo.py

bench: install
	$(PY) bench/export.py

# BASE_IMAGE=lifecycle-base:bookworm (made by tests/image_build/make_base.sh) builds offline.
image: install
	tests/image_build/make_wheels.sh $(PY) dist/wheels
	DOCKER_BUILDKIT=0 docker build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t cnb-lifecycle:dev .

clean:
	rm -rf $(VENV) demo-oci .pytest_cache
