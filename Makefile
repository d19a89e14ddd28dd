# Both commands bootstrap .venv from the pinned dependencies first (pyproject.toml, requirements-nodeps.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gansurvey-installed
PROFILE ?= quick
# serial (one arm after another, here) or ray (arms and seeds as Ray tasks; RAY_ADDRESS joins a cluster)
EXECUTOR ?= serial

.PHONY: test regenerate lint unit notebooks latency clean-results

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

test: $(STAMP) lint unit notebooks

lint: $(STAMP)
	$(PY) -m ruff check gansurvey tests perf notebooks

# Test files (and notebooks) run side by side, one per core (pytest-xdist; a file's tests stay together, in order),
# each with one torch thread: on two cores two one-thread processes do about twice the work of one two-thread
# process on these small models (README, On a cluster). TEST_WORKERS=0 runs them one after another.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --dist loadfile --durations=15

unit: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest $(XDIST) tests

# nbval re-executes every notebook (quick profile, as committed) and compares the cells marked NBVAL_CHECK_OUTPUT;
# GANSURVEY_PROGRESS=0 (inherited by the kernels) keeps progress bars out of the cells, as in the committed outputs.
notebooks: $(STAMP)
	GANSURVEY_PROGRESS=0 OMP_NUM_THREADS=1 $(PY) -m pytest $(XDIST) --nbval-lax --nbval-current-env \
		-p no:cacheprovider notebooks

regenerate: $(STAMP)
	$(PY) -m gansurvey regenerate --profile $(PROFILE) --executor $(EXECUTOR)
	$(PY) -m gansurvey tables --profile $(PROFILE)

latency: $(STAMP)
	$(PY) -m gansurvey latency --profile $(PROFILE)
