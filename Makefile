# Quick start: `make demo` (train -> export -> predict on synthetic data, CPU) and `make test`.
# Both create .venv and install the exact versions of this platform's lock file
# (requirements/lock-<python>-<os>-<machine>.txt, made by `make lock`), so a fresh machine gets
# what CI tested. constraints.txt pins torch to the build this machine has.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PLATFORM := $(shell $(PYTHON) -c 'import platform, sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}-{sys.platform}-{platform.machine()}")')
LOCK ?= requirements/lock-$(PLATFORM).txt
PIP_INSTALL := $(VPY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -c $(LOCK)
PIP_TOOLS := pip-tools==7.7.0
LOCK_UPGRADE ?= --upgrade  # `make lock LOCK_UPGRADE=` adds what pyproject.toml gained, keeping every other pin
RUN ?= runs/demo
# The speed switches the default run picks on this 2-core CPU by timing, fixed: the thread count
# and the precision change how sums round, so a busier machine could pick others and print other figures.
DEMO_SPEED := --amp bf16 --channels-last --threads 2

.PHONY: setup demo test lint models lock clean

$(LOCK):
	@echo "No lock file for this platform ($(PLATFORM)): run 'make lock' to resolve one, or pass LOCK=<file>." >&2
	@exit 2

# The build backend (setuptools) comes from the lock too: --no-build-isolation keeps pip from
# fetching whatever setuptools the index serves on the day.
$(VENV)/.installed: pyproject.toml constraints.txt $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) setuptools wheel
	$(PIP_INSTALL) --no-build-isolation -e ".[all]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VPY) -m okdhp_edge.train --out $(RUN) $(DEMO_SPEED)
	$(VPY) -m okdhp_edge.export $(RUN)/students/target.safetensors --target cpu --out $(RUN)/export
	$(VPY) examples/predict_image.py --model $(RUN)/export/target-int8.onnx --synthetic --out $(RUN)/prediction.jpg

test: setup
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	$(VPY) -m pytest -q

models: setup
	$(VPY) -m okdhp_edge.models

# Re-resolve every version of this platform's lock to the newest that pyproject.toml and
# constraints.txt allow; then run `make clean test demo` and commit the lock with the figures.
# (Changing the lock or pyproject.toml makes the next `make setup` rebuild .venv from scratch.)
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_TOOLS)
	mkdir -p $(dir $(LOCK))
	CUSTOM_COMPILE_COMMAND="make lock" .lock-venv/bin/pip-compile --quiet $(LOCK_UPGRADE) --extra all --all-build-deps --allow-unsafe --strip-extras \
		--no-emit-find-links --no-emit-index-url -c constraints.txt -o $(LOCK) pyproject.toml
	# Drop the project's own line (an absolute path) and torch's local tag (+cpu), so the same
	# pin takes the CUDA build of that release on a GPU machine, as constraints.txt does.
	sed -i -e '/^okdhp-edge @/,/^    # via file:/d' -e 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) runs .pytest_cache
