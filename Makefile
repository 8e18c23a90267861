# gridcast — two commands for a newcomer: `make run` and `make test`.
# Everything else here is what those two are made of.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
OUT ?= out

.PHONY: run test install compile lock upgrade system-deps services-up services-down demo-data clean help bento container bridge-image container-test stack loadtest

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

LOCK := requirements/lock.txt
BENTO_REQS := requirements/bento.txt
BRIDGE_REQS := requirements/bridge.txt
# the lock's target: CPython 3.11 on x86-64 Linux (glibc 2.28 or newer)
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28

# The virtualenv holds exactly the locked versions (hashes checked), then gridcast itself.
# uv (pinned in the lock) installs: pip is only used once, to bring uv in.
# Bytecode is compiled at install (as the Bento image does): uv does not by default, and
# where PYTHONDONTWRITEBYTECODE is set every process would compile bentoml, pandas, ...
# from source again, about two thirds of the service's cold start.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$$(grep -oE '^uv==[^ ]+' $(LOCK))"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --require-hashes -r $(LOCK)
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)
	@$(MAKE) --no-print-directory compile

compile: ## (re)compile gridcast's own bytecode (only changed files): faster process starts
	@$(BIN)/python -m compileall -q gridcast service streaming training ui load_tests >/dev/null

install: $(STAMP) ## create .venv and install gridcast from requirements/lock.txt (idempotent; fast the second time)

lock: ## re-lock after editing pyproject.toml, requirements/bento.in or bridge.in (keeps every version that still fits)
	@test -x $(BIN)/uv || { test -x $(BIN)/python || $(PY) -m venv $(VENV); $(BIN)/python -m pip install -q uv; }
	$(BIN)/uv pip compile pyproject.toml --extra test $(LOCK_TARGET) --generate-hashes --no-header -q $(UV_UPGRADE) -o $(LOCK)
	$(BIN)/uv pip compile requirements/bento.in -c $(LOCK) $(LOCK_TARGET) --no-header --no-annotate -q -o $(BENTO_REQS)
	$(BIN)/uv pip compile requirements/bridge.in -c $(LOCK) $(LOCK_TARGET) --no-header --no-annotate -q -o $(BRIDGE_REQS)
	@echo "Locked: $(LOCK), $(BENTO_REQS) and $(BRIDGE_REQS). 'make install' applies them; then 'make test'."

upgrade: ## move every locked package to its newest version (then make install && make test)
	@$(MAKE) --no-print-directory lock UV_UPGRADE=--upgrade

system-deps: ## Debian packages the tests need (redis-server, chromium, podman, ...), installed when missing
	@bash scripts/system-deps.sh

services-up: system-deps ## start real Redis and Kafka on 127.0.0.1 if they are not running
	@bash scripts/redis.sh up
	@bash scripts/kafka.sh up

services-down: ## stop Redis and Kafka started by the scripts
	-@bash scripts/kafka.sh down
	-@bash scripts/redis.sh down

stack: install services-up ## the real-time pipeline: Redis + Kafka + service + bridge + replay, URLs printed (Ctrl-C stops)
	@OUT=$(OUT) bash scripts/stack.sh

demo-data: install ## generate (with known faults), check and plot synthetic demo data under $(OUT)/
	$(BIN)/gridcast data sample --out $(OUT)/sample.parquet --days 730 --regions 2 --faults
	$(BIN)/gridcast data check $(OUT)/sample.parquet --report $(OUT)/quality.json --clean-out $(OUT)/clean.parquet
	$(BIN)/gridcast data plot $(OUT)/clean.parquet --out $(OUT)/plots
	@echo "Outputs: $(OUT)/sample.parquet (raw, with injected faults), $(OUT)/quality.json (quality report)," \
	      "$(OUT)/clean.parquet (cleaned), $(OUT)/plots/ (PNGs). More: docs/data.md"

run: demo-data compile ## the demo: data pipeline, quick models if the store serves none, then the service + UI on :3000
	$(quick-models-if-empty)
	@echo "Serving on http://localhost:$${GRIDCAST_PORT:-3000} (UI: /ui, API docs: /, metrics: /metrics). Ctrl-C stops."
	$(BIN)/gridcast serve

test: install compile services-up ## run the whole suite against real Redis and Kafka
	$(BIN)/python -m pytest

quick-models-if-empty = $(BIN)/python -c 'import logging; logging.basicConfig(level=logging.INFO, format="%(message)s"); \
	from gridcast.settings import get_settings; from training.train_cli import ensure_quick_models; ensure_quick_models(get_settings())'

bento: install ## build the Bento (bentofile.yaml); trains quick demo models first if the store serves none
	$(quick-models-if-empty)
	$(BIN)/bentoml build

container: bento ## containerize the Bento with podman (BASE_IMAGE=... replaces the standard base image)
	@bash scripts/podman-setup.sh
	$(BIN)/bentoml containerize gridcast:latest --backend podman --opt network=host $(if $(BASE_IMAGE),--opt from=$(BASE_IMAGE))
	@echo "Image: localhost/$$($(BIN)/bentoml get gridcast:latest -o json | $(BIN)/python -c 'import json,sys; d = json.load(sys.stdin); print(d["name"] + ":" + d["version"])')"

bridge-image: install ## after `make container`: the bridge image on it (streaming/Containerfile), gridcast-bridge:<version> and :latest
	@bash scripts/podman-setup.sh
	bash scripts/bridge-image.sh

container-test: bento ## containerize on a local base image, run it, POST a 24-step LSTM forecast, check it; build and start the bridge image on it; remove them
	bash scripts/container-test.sh

loadtest: install ## Locust headless (all scenarios) against HOST=URL, or a service it starts on embedded defaults; reports in load_tests/results/
	$(BIN)/python load_tests/run.py $(if $(HOST),--host $(HOST)) $(LOADTEST_ARGS)

clean:
	rm -rf $(OUT) .pytest_cache
