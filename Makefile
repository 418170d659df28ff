# Two commands do everything: `make run` and `make test`. Both install into .venv first.
# `make test` (what CI runs) = pytest + `make lint`, which packages the app for AWS first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STAGE  ?= dev
# chalice package needs a region to resolve the Lambda runtime; it never calls AWS.
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test pytest bench install clean infra package lint

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/run_local.py

test: pytest lint

pytest: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/calendar_bench.py

# infra/resources.yaml is generated from chalicelib/tables.py, .chalice/config.json and app.py.
infra: $(STAMP)
	$(PY) infra/generate.py

# build/: deployment.zip (Lambda wheels for python3.11 from PyPI) and sam.yaml, the SAM template with
# infra/resources.yaml merged in, its Stage parameter pinned to $(STAGE).
package: $(STAMP)
	$(PY) infra/generate.py --check
	rm -rf build
	$(VENV)/bin/chalice package --stage $(STAGE) --merge-template infra/resources.yaml build
	$(PY) infra/generate.py pin-stage build/sam.yaml $(STAGE)

lint: package
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint build/sam.yaml

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis outbox build
