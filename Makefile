# lsm_ros: `make demo` runs the main job, `make test` runs the tests.
# Both create or reuse the venv $(VENV) first (scripts/setup_venv.sh; quick when unchanged).
VENV ?= .venv
PYTEST_ARGS ?=
# Keep DDS traffic on this machine (test/conftest.py also sets a per-run ROS_DOMAIN_ID).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/lsm_ros/config/fastdds_loopback.xml

.PHONY: all venv demo test test-fast clean-venv
all: test

venv:
	@bash scripts/setup_venv.sh $(abspath $(VENV))

demo: venv
	$(abspath $(VENV))/bin/lsm_demo

test: venv
	$(abspath $(VENV))/bin/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(abspath $(VENV))/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
