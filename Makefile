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

unit: $(STAMP)
	$(PY) -m pytest tests

# nbval re-executes every notebook (quick profile, as committed) and compares the cells marked NBVAL_CHECK_OUTPUT;
# GANSURVEY_PROGRESS=0 (inherited by the kernels) keeps progress bars out of the cells, as in the committed outputs.
notebooks: $(STAMP)
	GANSURVEY_PROGRESS=0 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

regenerate: $(STAMP)
	$(PY) -m gansurvey regenerate --profile $(PROFILE) --executor $(EXECUTOR)
	$(PY) -m gansurvey tables --profile $(PROFILE)

latency: $(STAMP)
	$(PY) -m gansurvey latency --profile $(PROFILE)
