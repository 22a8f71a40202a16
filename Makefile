# slawatch — the two commands a newcomer needs are `make run` and `make test`.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PKGS := lib/slawatch-common services/ingest services/sla-engine services/notifier
PYTEST_ARGS ?=

.PHONY: help install lint format test test-unit test-integration run bench schemas lock \
        kafka-up kafka-down kafka-reset pg-up pg-down alertmanager prometheus reports reports-runtime rules-test \
        fuzz chaos clean

help:
	@echo "make run     set up and run slawatch locally (Ctrl-C stops everything)"
	@echo "make test    lint + unit + integration + end-to-end tests (starts Kafka and PostgreSQL)"
	@echo "make install build .venv with the three services and the dev tools"
	@echo "make lint    ruff + mypy --strict"
	@echo "make rules-test  promtool checks and unit tests of the Prometheus rules (deploy/prometheus)"
	@echo "make bench   benchmarks into bench/results/latest.json"
	@echo "make fuzz    the long fuzz run (normalisers, HTTP, and schema-drawn events through engine and notifier)"
	@echo "make chaos   the long chaos run (10,000 tickets, 50 SIGKILLs) and 10-minute provider outages"

install: $(VENV)/.installed

$(VENV)/.installed: constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PKGS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt \
	  $(addprefix -e ,$(PKGS)) -r requirements-dev.txt
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schemas: install
	$(BIN)/python -m slawatch_common.schemagen schemas

lock: install
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.new && mv constraints.new constraints.txt

kafka-up:
	deploy/kafka/kafka.sh start

kafka-down:
	deploy/kafka/kafka.sh stop

kafka-reset:
	deploy/kafka/kafka.sh reset

pg-up:
	deploy/postgres/pg.sh start

pg-down:
	deploy/postgres/pg.sh stop

# Debian's prometheus-alertmanager for tests/ingest/test_alertmanager_client.py;
# installed once (apt-get), its system service never started.
alertmanager:
	deploy/alertmanager/install.sh

# Debian's prometheus (server and promtool) for the compliance rules of
# deploy/prometheus and tests/deploy; installed once, its service never started.
prometheus:
	deploy/prometheus/install.sh

# Debian's CJK fonts and text layout for the PDF reports (reports-runtime),
# and poppler-utils and chromium for their tests (deploy/reports/install.sh);
# installed once.
reports:
	deploy/reports/install.sh

reports-runtime:
	deploy/reports/install.sh runtime

# promtool: the rule files, their unit tests (deploy/prometheus/tests) and the
# example configuration.
rules-test: prometheus
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml
	promtool check config deploy/prometheus/prometheus.yml

test: install lint kafka-up pg-up alertmanager prometheus reports rules-test
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m "not kafka and not postgres and not e2e and not smtp" $(PYTEST_ARGS)

# The fuzz tests of `make test`, with thousands of examples instead of dozens.
fuzz: install kafka-up
	SLAWATCH_FUZZ=long $(BIN)/pytest --timeout=3600 \
	  tests/ingest/test_fuzz_normalisers.py tests/ingest/test_fuzz_http.py \
	  tests/ingest/test_fuzz_signatures.py \
	  tests/engine/test_intake_properties.py tests/notifier/test_intake_properties.py \
	  $(PYTEST_ARGS)

# The chaos test of `make test`, with 50 kills (25 of each service) instead of 20, and
# the provider outage test with 10-minute outages (retry budgets of 15 and 5 minutes).
chaos: install kafka-up pg-up
	SLAWATCH_CHAOS=long SLAWATCH_OUTAGE=long $(BIN)/pytest --timeout=3600 \
	  tests/e2e/test_chaos.py tests/e2e/test_outage.py $(PYTEST_ARGS)

run: install reports-runtime kafka-up
	deploy/dev/run.sh

bench: install kafka-up pg-up
	deploy/bench/install.sh
	$(BIN)/python -m bench.run

clean:
	deploy/kafka/kafka.sh stop || true
	rm -rf .data
