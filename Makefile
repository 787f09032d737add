# kmschaos — `make demo` runs the scenario catalogue, `make test` runs the tests.
# Both set everything up first (venv, dependencies, Toxiproxy).

PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
TOPOLOGY   ?= scenarios/topologies/one-site.yaml
TIME_SCALE ?= 0.05
WORKERS    ?= 2
REPORT_DIR ?= reports/demo
BACKEND    ?= local
RUNS       ?= 20
# what make soak runs RUNS times (make test's local part, or a subset: ARGS="tests/test_x.py")
ARGS       ?= tests scenarios
# the docker-backend subset of the scenario catalogue (make test-docker)
DOCKER_SCENARIOS := scenarios/test_steady_state.py scenarios/test_refuse.py \
	scenarios/test_reset.py scenarios/test_blackhole.py scenarios/test_stall.py \
	scenarios/test_kill.py scenarios/test_unreachable.py scenarios/test_async_partition.py \
	scenarios/test_async_crash_window.py scenarios/test_tls_certificates.py \
	scenarios/test_idle_and_clock.py scenarios/test_kmip_go_resend.py \
	scenarios/test_client_presets.py scenarios/test_key_cache.py \
	scenarios/test_lb_health_checks.py scenarios/test_lb_down.py scenarios/test_lb_idle_timeout.py
# the swarm backend's subset: the seed two-site layout with site-b on node 2 (faults on a
# remote node), a site partition with async replication across the nodes (make test-swarm)
SWARM_SCENARIOS := scenarios/test_two_sites_order.py scenarios/test_second_site_faults.py \
	scenarios/test_async_partition.py

.PHONY: setup demo test test-unit test-scenarios up down status bench lint clean help \
	images images-offline test-docker test-swarm matrix-full soak scale

help:
	@echo "make setup   create $(VENV), install kmschaos and Toxiproxy v2.12.0"
	@echo "make demo    run the scenario catalogue (local backend), print verdicts + report path,"
	@echo "             then the resilience matrix of $(TOPOLOGY) (policies x faults)"
	@echo "make matrix-full  every client preset x every default matrix fault on the seed two-site"
	@echo "             layout (scenarios/topologies/two-sites.yaml), time scale $(TIME_SCALE)"
	@echo "make test    unit, integration and scenario tests (time scale $(TIME_SCALE), $(WORKERS) workers);"
	@echo "             then make scale, then the docker subset (make test-docker) when a Docker engine answers,"
	@echo "             then the swarm subset (make test-swarm) when a second engine can start"
	@echo "make scale   the scenarios that need the machine alone (40 replicas: a site partition)"
	@echo "make test-docker  build the images, run the docker-backend tests and scenario subset"
	@echo "make test-swarm   start a two-node swarm on this machine (root), run the swarm subset, remove it"
	@echo "make soak    make test's local part RUNS=$(RUNS) times, each a fresh pytest process (fresh"
	@echo "             clusters, ports, xdist scheduling); tests that failed at least once ->"
	@echo "             reports/soak/flakes.md (ARGS=\"tests/test_x.py\" soaks a subset)"
	@echo "make up      start $(TOPOLOGY) and leave it running (TIME_SCALE=..., BACKEND=docker)"
	@echo "make down    stop it;  make status   show endpoints"
	@echo "make bench   benchmarks -> bench/results/"
	@echo "make lint    ruff + mypy"
	@echo "make images  the Docker backend's images (online if a registry answers, else offline)"
	@echo "make images-offline  the same without any registry (debootstrap base, host wheels)"

setup: $(VENV)/.installed
	@$(BIN)/python -m harness.toolchain install-toxiproxy
	@# load-balancer topologies run Debian's HAProxy (harness/lb)
	@if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make setup: installing haproxy (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
	  else \
	    echo "make setup: haproxy missing and not installable here (needs root and apt-get):" \
	      "topologies with load_balancers cannot start; install it: sudo apt-get install haproxy"; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/kmschaos run -n $(WORKERS) --time-scale $(TIME_SCALE) --report-dir $(REPORT_DIR)
	$(BIN)/kmschaos matrix $(TOPOLOGY) --time-scale $(TIME_SCALE) -j $(WORKERS) \
		--report-dir $(REPORT_DIR)/matrix

matrix-full: setup
	$(BIN)/kmschaos matrix scenarios/topologies/two-sites.yaml --policies all \
		--time-scale $(TIME_SCALE) -j $(WORKERS) --report-dir reports/matrix-full

test: setup
	$(BIN)/python -m pytest tests scenarios -n $(WORKERS) --kms-time-scale $(TIME_SCALE) \
		--kms-report-dir reports/test -q -rs -m "not docker and not swarm"
	$(MAKE) --no-print-directory scale
	@if [ "$$KMSCHAOS_REQUIRE_DOCKER" = 1 ] || $(BIN)/python -m harness.cluster.docker_backend engine; \
	then $(MAKE) --no-print-directory test-docker; \
	else echo "make test: docker-backend tests skipped (no Docker engine; make test-docker runs them)"; fi
	@if [ "$$KMSCHAOS_REQUIRE_SWARM" = 1 ] || $(BIN)/python -m harness.swarm.lab check; \
	then $(MAKE) --no-print-directory test-swarm; \
	else echo "make test: swarm-backend tests skipped (make test-swarm runs them, as root)"; fi

# scenarios that need the machine to themselves (kms_alone: 40 replicas), one at a time
scale: setup
	$(BIN)/python -m pytest scenarios --kms-alone -m "kms_alone and not docker" \
		--kms-time-scale $(TIME_SCALE) --kms-report-dir reports/scale -q -rs

test-docker: images
	KMSCHAOS_REQUIRE_DOCKER=1 $(BIN)/python -m pytest tests/test_docker_backend.py \
		tests/test_docker_balancers.py tests/test_images.py tests/test_compose.py $(DOCKER_SCENARIOS) --kms-backend docker -n $(WORKERS) \
		--kms-time-scale $(TIME_SCALE) --kms-report-dir reports/test-docker -q -rs

# a two-node swarm on this machine (a second engine in a network namespace), removed
# afterwards whatever happens; one process: the bad-set-up tests relabel node 2 for a moment
test-swarm: images
	@trap '$(BIN)/kmschaos swarm lab down' EXIT INT TERM; \
	$(BIN)/kmschaos swarm lab up && \
	KMSCHAOS_REQUIRE_SWARM=1 $(BIN)/python -m pytest tests/test_swarm_backend.py $(SWARM_SCENARIOS) \
		--kms-backend swarm --kms-time-scale $(TIME_SCALE) --kms-report-dir reports/test-swarm -q -rs

# plain reruns, not pytest-repeat: a plugin repeats tests inside one session (harness/soak.py)
soak: setup
	$(BIN)/python -m harness.soak --runs $(RUNS) --out reports/soak -- $(ARGS) -n $(WORKERS) \
		--kms-time-scale $(TIME_SCALE) -m "not docker and not swarm" -q -rs

test-unit: setup
	$(BIN)/python -m pytest tests -m "not integration" -q

up: setup $(if $(filter docker,$(BACKEND)),images)
	$(BIN)/kmschaos up $(TOPOLOGY) --time-scale $(TIME_SCALE) --backend $(BACKEND)

down: setup
	$(BIN)/kmschaos down

status: setup
	$(BIN)/kmschaos status

bench: setup
	$(BIN)/python -m bench

images: setup
	$(BIN)/kmschaos images build

images-offline: setup
	$(BIN)/kmschaos images build --offline

lint: setup
	$(BIN)/ruff check harness tests scenarios bench
	$(BIN)/ruff format --check harness tests scenarios bench
	$(BIN)/mypy harness

clean:
	-$(BIN)/kmschaos down --all
	rm -rf reports .kmschaos
