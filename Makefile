# Two commands do all set-up on a fresh machine: `make lab` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The course's JupyterLab defaults (no news pop-up), for this venv's JupyterLab only.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json

.PHONY: lab test test-fast lint format bench bench-quick site clean

# pip's own progress (one line per package, download bars) shows the install is moving.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || { echo "==> creating $(VENV) with $(PY)"; $(PY) -m venv $(VENV); }
	@echo "==> installing the pinned packages into $(VENV) (a few minutes the first time)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --progress-bar on -r requirements-dev.txt
	@echo "==> installing the kit (editable)"
	@$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

$(LAB_OVERRIDES): jupyter/overrides.json | $(STAMP)
	@mkdir -p $(dir $@)
	@cp $< $@

## make lab: create .venv, install, open JupyterLab on the first notebook; the URL comes last.
## tools/lab.py trusts the notebooks and starts the server with jupyter/jupyter_server_config.py.
lab: $(STAMP) $(LAB_OVERRIDES)
	@$(BIN)/python -m tools.lab

## make test: lint, type check (mypy --strict on stt_agent), then the whole suite
## (notebooks and browser checks included). pytest runs inside a network namespace of its own
## (tests/netns.py) so WebRTC media never leaves this machine's loopback and test veth pair.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m tests.netns -- $(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not browser and not notebooks"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## make site: run every notebook (no keys) and render the course to static HTML in build/site/
site: $(STAMP)
	@$(BIN)/python -m tools.site --out build/site

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
