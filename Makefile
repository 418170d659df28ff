# Two commands do everything: `make run` and `make test`. Both install into .venv first.
# `make test` (what CI runs) = `make lint` (ruff; import-linter's layer contracts; every stage packaged for
# AWS, cfn-linted and scanned by checkov) and pytest, at the same time.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# checkov pins other versions of boto3 and friends than requirements-dev.txt: it has a venv of its own.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# Redocly CLI, the OpenAPI linter, from npm: pinned by package-lock.json, installed by `npm ci` into node_modules/.
NODE_STAMP := node_modules/.installed
# No telemetry, no update check: the lint runs offline.
REDOCLY := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true node_modules/.bin/redocly
CLIENT_TEST := tests/test_generated_client.py
STAGE  ?= dev
STAGES  = $(shell $(PYTHON) -c 'import json; print(*json.load(open(".chalice/config.json"))["stages"])')
# chalice package needs a region to resolve the Lambda runtime; it never calls AWS.
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test pytest demo bench install clean infra openapi package lint

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(CHECKOV_STAMP) $(NODE_STAMP)

run: $(STAMP)
	$(PY) scripts/run_local.py

# Lint and pytest run side by side: the suite leaves part of a core idle (servers started, threads
# waiting), and the lint fills it. Each line of output stays whole; either failing fails the target.
test: $(STAMP) $(CHECKOV_STAMP) $(NODE_STAMP)
	$(MAKE) --no-print-directory -j2 --output-sync=line lint pytest

# One worker per core (pytest-xdist); worksteal rebalances, since a few tests take far longer than the rest.
# The generated client's test runs in `make lint`.
pytest: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal --ignore=$(CLIENT_TEST)

# Against a running `make run` (in another terminal): a fortnight posted, scanned, tallied, reported.
demo: $(STAMP)
	$(PY) scripts/demo.py

# Each script prints its results table and exits non-zero when it misses its target. The DynamoDB
# benchmarks build their data with the tests' factories (tests/factories.py).
bench: export PYTHONPATH := tests
bench: $(STAMP)
	$(PY) bench/calendar_bench.py
	$(PY) bench/scan_bench.py
	$(PY) bench/tally_bench.py
	$(PY) bench/age_bench.py
	$(PY) bench/whatif_bench.py
	$(PY) bench/interactions_bench.py

# infra/resources.yaml is generated from chalicelib/aws/tables.py, .chalice/config.json and app.py.
infra: $(STAMP)
	$(PY) infra/generate.py

# chalicelib/openapi.yaml is generated: scripts/openapi_source.yaml (written by hand) and the schemas of the
# request bodies from their pydantic models (chalicelib/core/schemas.py); the docs' field tables too.
openapi: $(STAMP)
	$(PY) scripts/generate_openapi.py

# build/: deployment.zip (Lambda wheels for python3.11 from PyPI) and sam.yaml, the SAM template with
# infra/resources.yaml merged in, tied to $(STAGE) (Stage defaults to it; a CloudFormation rule refuses others).
package: $(STAMP)
	$(PY) infra/generate.py --check
	rm -rf build
	$(VENV)/bin/chalice package --stage $(STAGE) --merge-template infra/resources.yaml build
	$(PY) infra/generate.py pin-stage build/sam.yaml $(STAGE)
	$(PY) infra/generate.py contact-stream build/sam.yaml

# The OpenAPI document is linted by Redocly CLI (redocly.yaml: every problem fails; docs/api.md says why),
# and openapi-python-client builds a client from it, which must come without a warning and work ($(CLIENT_TEST)).
# Every stage's template is cfn-linted, and scanned by checkov in one run (.checkov.yaml: its settings and
# the checks skipped, explained in docs/deploy.md); build/ is left with $(STAGE)'s.
lint: $(STAMP) $(CHECKOV_STAMP) $(NODE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(REDOCLY) lint --format=stylish chalicelib/openapi.yaml
	$(PY) -m pytest -q $(CLIENT_TEST)
	rm -rf build-templates && mkdir build-templates
	for stage in $(filter-out $(STAGE),$(STAGES)) $(STAGE); do \
	    $(MAKE) --no-print-directory package STAGE=$$stage && $(VENV)/bin/cfn-lint build/sam.yaml \
	        && cp build/sam.yaml build-templates/$$stage.yaml || exit 1; \
	done
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml $(foreach stage,$(STAGES),-f build-templates/$(stage).yaml)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .pytest_cache .hypothesis outbox build build-templates .run
