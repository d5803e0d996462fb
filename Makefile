# Two commands on a fresh machine: `make run` (the main job) and `make test`.
# Both install what they need: a virtual environment with the package and,
# when missing, Debian's Fashion-MNIST package. Both are idempotent.

PYTHON ?= python3
VENV ?= .venv
CONFIG ?= configs/default.py
WORKDIR ?= runs/default
ARGS ?=
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Test tiers: `make test` is the fast tier (every test not marked slow; run it
# before each commit), `make test-slow` the slow tier (end-to-end runs,
# subprocesses, long trainings), `make test-all` both at once.
PYTEST = $(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

.PHONY: run test test-slow test-all install install-test data clean

run: install data
	$(VENV)/bin/python -m jaxsparse.main --config=$(CONFIG) --workdir=$(WORKDIR) $(ARGS)

# The fast tier compiles its many small programs at XLA's optimisation level 0
# (half the time: compilation dominates it); the slow tier tests the default level,
# each test file in a process of its own, two at a time (tests/run_by_file.py says why).
test: install-test data
	XLA_FLAGS="--xla_backend_optimization_level=0 $$XLA_FLAGS" $(PYTEST) -m "not slow" tests $(ARGS)

test-slow: install-test data
	$(VENV)/bin/python tests/run_by_file.py --jobs 2 -m slow tests $(ARGS)

test-all: test test-slow

# `install` is what the main job needs (no TensorFlow: Fashion-MNIST is read
# from its IDX files); `install-test` adds the test tools, scikit-learn and
# TFDS (with TensorFlow) for the tests of other datasets.
install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e .
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

data: $(FASHION_MNIST)

$(FASHION_MNIST):
	$(SUDO) apt-get install -y dataset-fashion-mnist || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
