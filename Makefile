# DreamLayer: `make run` serves the whole stack, `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE =

.PHONY: install run test check lint clean chromium chaos cluster load screenshots bench-gpu

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# --no-compile: pip's compiling of every module of every package (torch's and transformers'
# thousands) was half of the install (55 s of 100 s here). Python compiles a module the first
# time a process imports it, and caches it: every target lets it write that cache, even where
# the environment says not to (PYTHONDONTWRITEBYTECODE=1 would compile torch's imports again
# in every process, about 9 s each).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --no-compile "torch==2.13.0"
	$(PY) -m pip install --quiet --no-compile -e ".[dev]"
	# spandrel (upscalers) without its dependencies: it names torchvision, which exists only as
	# a CUDA build that fails to import beside this torch; what spandrel needs besides
	# (einops, safetensors) is in pyproject.toml (docs/adr/0010-spandrel-without-torchvision.md).
	$(PY) -m pip install --quiet --no-compile --no-deps "spandrel==0.4.2"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m dreamlayer_site.stack

# The browser tests drive Debian's Chromium; install it where we can (root with apt-get).
chromium:
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "Chromium is missing: the browser tests will be skipped (under CI=true they fail)."

# Two parts: the tests that do not measure, on TEST_WORKERS processes (pytest-xdist; each has
# its own data folder, database and Redis database), then those that measure time or memory
# against a target, alone (tests/conftest.py, SERIAL_MODULES).
TEST_WORKERS ?= 2
test: install chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "not serial" $(PYTEST_ARGS)
	$(PY) -m pytest -m serial $(PYTEST_ARGS)

# The docs' pictures of the pages (docs/screenshots): the browser tests, writing their
# screenshots there instead of under build/screenshots.
screenshots: install chromium
	DREAMLAYER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -n $(TEST_WORKERS) tests/browser $(PYTEST_ARGS)

# The edit loop: lint, the import contracts, and every test that needs no live stack (no
# Celery worker, no daphne, no browser) and loads no model at its real width, in parallel.
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py makemigrations --check --dry-run
	DREAMLAYER_FAST_LANE=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not stack and not heavy" $(PYTEST_ARGS)

# Reliability: SIGKILL the worker mid-inference and restart Redis (docs/reliability-and-security.md).
chaos: install
	$(PY) scripts/chaos.py --jobs $${JOBS:-12} --kills $${KILLS:-4}

# Cluster: 2 web processes, 3 workers, each with its own data folder, S3 (moto's server on
# loopback), one SIGKILL mid-job (docs/scaling-out.md, "A cluster, tested"). Uses DATABASE_URL / REDIS_URL.
cluster: install
	CLUSTER_JOBS=$${JOBS:-60} $(PY) -m pytest tests/test_cluster.py -q -s -p no:cacheprovider

# The GPU kit: every family against stock, batching, a profiled step, a job through the stack,
# the memory plans (docs/performance.md); on a CUDA machine at the published sizes, elsewhere
# at the tiny size; within BUDGET seconds (what does not fit is named in the table; 0: none).
bench-gpu: install
	$(PY) bench/gpu_kit.py --budget-seconds $${BUDGET:-420} --out build/gpu-kit

# Load: 50 websocket subscribers + 20 waiting img2img clients against a running server.
load: install
	$(PY) scripts/load.py --url $${URL:-http://127.0.0.1:8000} --key $${KEY:?set KEY to an API key}

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
