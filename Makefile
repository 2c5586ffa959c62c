# Fresh machine: `make test` builds .venv, installs the pinned set, runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test install clean

install: $(STAMP)

# Reinstall whenever the dependency declaration or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests comparisons

clean:
	rm -rf $(VENV) *.egg-info
