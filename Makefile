# Fresh machine: `make test` builds .venv, installs the pinned set, runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-cpus test-slow test-wheel results bench install clean

install: $(STAMP)

# Reinstall whenever the dependency declaration or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# One pytest-xdist worker per core (TEST_WORKERS), each framework single-threaded in it (conftest.py).
# --dist loadscope: a test file runs whole on one worker, so a module fixture (a probe's processes, a
# parity grid, a Ray instance) is set up once. Not loadgroup: with pytest 9.2 its xdist_group marks are
# silently ignored (pytest-xdist issue #1386: it rewrites a node id pytest no longer reads).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope tests comparisons

# The cross-framework proofs again under emulated CPUs (an AVX2 CPU: oneDNN, ATen and XLA capped at AVX2;
# one from before AVX2: SSE4.1, ATen DEFAULT, XLA SSE4.2) and 2 threads: each must pass
# (scripts/test_cpus.sh says what each changes, and when a host makes one redundant).
# ARGS go to pytest, e.g. make test-cpus ARGS='-k framework_facts'.
test-cpus: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/test_cpus.sh $(ARGS)

# The installed package, not the checkout: build the wheel, install it in a fresh venv with the pins, run
# the command from outside the checkout (tests/test_wheel.py; CI runs it).
test-wheel: $(STAMP)
	$(BIN)/python -m pytest -m slow tests/test_wheel.py

# Opt-in: long parity trajectories and other tests marked slow.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow tests comparisons

# Every table and plot in results/, on the embedded digits data. Resumable: runs already
# recorded in results/runs.jsonl by the same code are reused (add ARGS=--force to redo them).
results: $(STAMP)
	$(BIN)/l2compare run all $(ARGS)

bench: $(STAMP)
	$(BIN)/l2compare bench $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info
