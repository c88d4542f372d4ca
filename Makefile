# minarch: thin targets over python and the minarch CLI. Every target sets up the environment it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The data root (MINARCH_DATA, default ./data); this project's CI keeps the datasets in ../shared/data.
export MINARCH_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),data)

PROFILE  ?= quick
DATASETS ?= mnist,fashion_mnist,cifar10
WORKERS  ?= 2
DATASET  ?= mnist
FAMILY   ?= dnn

.PHONY: setup browser book lab sweep test test-fast benchmark sweeps phases racing findings clean

# Install the pinned stack into a project virtual environment (again only when the pins change).
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The main job: execute every chapter with papermill and build the HTML book in _build/html.
book: setup
	$(BIN)/minarch book --profile $(PROFILE) --datasets $(DATASETS) --workers $(WORKERS)

# JupyterLab at the project root: the chapter notebooks (.py or .ipynb) open, run top to bottom and draw their charts
# against the store and data make book uses, whatever folder their kernel starts in.
lab: setup
	cd $(CURDIR) && $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root)

# One sweep, printed as a table (the CLI without the book).
sweep: setup
	$(BIN)/minarch sweep --dataset $(DATASET) --profile $(PROFILE) --family $(FAMILY) \
		--executor process --workers $(WORKERS)

# Speed against the textbook PyTorch loop, seed batching, FLOP/s and projected sweep times (prints; about 10 min).
benchmark: setup
	$(BIN)/python benchmarks/speed.py | tee benchmarks/latest.txt
	$(BIN)/python benchmarks/report.py

# Whole quick sweeps as a user runs them, this engine and the engine before bundles back to back, one family per
# dataset (about 30 min on 2 cores, on an idle machine). The last output is replaced only on success.
sweeps: setup
	$(BIN)/python benchmarks/sweeps.py > benchmarks/.sweeps.txt
	mv benchmarks/.sweeps.txt benchmarks/sweeps-latest.txt && cat benchmarks/sweeps-latest.txt

# Where the smallest-model chapter of DATASET spends its time, phase by phase, on the store a book build left in
# results/ (one core, as the book runs it; about 13 min for cifar10). The last output is replaced only on success.
phases: setup
	$(BIN)/python benchmarks/phases.py --dataset $(DATASET) > benchmarks/.phases.txt
	mv benchmarks/.phases.txt benchmarks/phases-latest.txt && cat benchmarks/phases-latest.txt

# What bounds racing's savings on DATASET: every frontier variant measured whole, stopping rules replayed on it
# (about 5 min for cifar10 on 2 cores). The last output is replaced only on success.
racing: setup
	$(BIN)/python benchmarks/racing.py --dataset $(DATASET) > benchmarks/.racing.txt
	mv benchmarks/.racing.txt benchmarks/racing-latest.txt && cat benchmarks/racing-latest.txt

# What the quick book's verdicts rest on (undecided parts, the design's added training, each verdict's stability),
# read from the store a quick book build left in results/ (seconds). The last output is replaced only on success.
findings: setup
	$(BIN)/python benchmarks/findings.py > benchmarks/.findings.txt
	mv benchmarks/.findings.txt benchmarks/findings-latest.txt && cat benchmarks/findings-latest.txt

test: setup browser
	$(BIN)/python -m pytest -q

# The inner loop while working (about a minute on 2 cores): no book builds, browser, child processes, real data or
# training for seconds; make test runs them all.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not (book or browser or subprocess or real_data or slow)"

# Debian's Chromium and ChromeDriver for the book's browser test (which is skipped where they cannot be had).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium is not installed and cannot be here: the browser test will be skipped"; fi; fi

clean:
	rm -rf _build .pytest_cache
