# Quick start: `make demo` (train -> export -> predict on synthetic data, CPU) and `make test`.
# Both create .venv and install what they need; every install goes through constraints.txt,
# which pins torch to the build this machine has.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PIP_INSTALL := $(VPY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
RUN ?= runs/demo

.PHONY: setup demo test models clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e ".[all]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VPY) -m okdhp_edge.train --out $(RUN)
	$(VPY) -m okdhp_edge.export $(RUN)/students/target.safetensors --target cpu --out $(RUN)/export
	$(VPY) examples/predict_image.py --model $(RUN)/export/target-int8.onnx --synthetic --out $(RUN)/prediction.jpg

test: setup
	$(VPY) -m pytest -q

models: setup
	$(VPY) -m okdhp_edge.models

clean:
	rm -rf $(VENV) runs .pytest_cache
