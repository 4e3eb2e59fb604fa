# geo-dfm: one entry point for setting up, testing and running the project.
#   make demo   - set up the environment if needed, run localize + classify on a sample scene
#   make test   - set up everything the tests need (venv, pip, apt python3-qgis), run the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SITE := $(shell $(PYTHON) -c 'import sysconfig,sys; print("lib/python%d.%d/site-packages" % sys.version_info[:2])')
QGIS_PTH := $(VENV)/$(SITE)/zz_debian_qgis.pth
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_OUT ?= demo-output
# torch/torchvision pinned for the dev/CI path (../shared/specs/environment.md): these lie in the
# machine's local wheel store; other versions download gigabytes.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

export QT_QPA_PLATFORM ?= offscreen
export QGIS_PREFIX_PATH ?= /usr

.PHONY: setup qgis test test-fast demo lint format plugin-zip bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	rm -f $(QGIS_PTH)   # pip must not see Debian's packages as installed
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,distributed,generate]'
	touch $@

# Headless QGIS from Debian, exposed to the venv through a .pth written after pip install.
qgis: setup
	@dpkg -s python3-qgis >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3-qgis; }
	echo /usr/lib/python3/dist-packages > $(QGIS_PTH)

# pytest's exit 5 ("no tests collected") is reported as a failure, never as a silent pass.
test: qgis
	@HF_HUB_OFFLINE=1 GEO_DFM_REQUIRE_QGIS=1 $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; exit $$rc

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow and not qgis" -p no:pytest_qgis

demo: setup
	$(VENV)/bin/geo-dfm demo -o $(DEMO_OUT) --overwrite

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .

plugin-zip:
	$(PYTHON) qgis_plugin/build_zip.py --output dist

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache $(DEMO_OUT)
