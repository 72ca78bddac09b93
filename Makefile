# Two set-up commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package metadata changes. uv (installed into the venv) resolves the
# same versions as pip and installs them faster (measured here: 24 s with its download cache
# warm, 36-48 s from an empty one, against pip's 83 s); it does not read pip's configuration,
# so INSTALLER=pip uses pip (a private index set in pip.conf, say). --compile-bytecode: without
# .pyc files every start compiles TensorFlow's sources again where PYTHONDONTWRITEBYTECODE is
# set (import 12 s instead of 5 s).
INSTALLER ?= uv
EXTRAS := .[test,bench,beam,app]
$(STAMP): $(PY) setup.cfg pyproject.toml
ifeq ($(INSTALLER),uv)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -e '$(EXTRAS)'
else
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '$(EXTRAS)'
endif
	touch $(STAMP)

# Two workers: most of a test's time is one Python thread tracing a graph or starting a
# TensorFlow subprocess, so two overlap well on two cores. Whole files go to one worker
# (tests/conftest.py: one unit per file, slowest first), so module fixtures are built once.
# TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# `make demo` fills the hole of examples/ with the bundled weights; `make demo DEMO_WEIGHTS=x.npz`
# with other ones. The check gives a clear message while the default weights are not bundled.
DEFAULT_WEIGHTS := hifill_tf/weights/hifill_default.npz
DEMO_WEIGHTS ?= $(DEFAULT_WEIGHTS)
DEMO_IMAGE := examples/bridge-4352x2448.jpg
DEMO_MASK := examples/bridge-4352x2448-mask.png
DEMO_OUTPUT := out/bridge-inpainted.jpg
DEMO_PAIR := out/bridge-side-by-side.jpg

demo: $(STAMP)
	@if [ ! -f "$(DEMO_WEIGHTS)" ]; then \
	  if [ "$(DEMO_WEIGHTS)" = "$(DEFAULT_WEIGHTS)" ]; then \
	    echo "make demo: the default weights are not bundled yet ($(DEFAULT_WEIGHTS) is missing)."; \
	    echo "Train a model (train.py) or use weights you have: make demo DEMO_WEIGHTS=FILE.npz"; \
	  else echo "make demo: $(DEMO_WEIGHTS): no such weights file"; fi; \
	  exit 1; \
	fi
	$(PY) infer.py --image $(DEMO_IMAGE) --mask $(DEMO_MASK) --weights $(DEMO_WEIGHTS) \
	  --output $(DEMO_OUTPUT) --side_by_side $(DEMO_PAIR) --overwrite
	@echo "Inpainted photo: $(DEMO_OUTPUT)"
	@echo "Side by side:    $(DEMO_PAIR)"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
