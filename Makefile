# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean default-model

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the local CPU wheel, so nothing below pulls CUDA packages
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m gmsa_integrations demo

test: $(STAMP)
	$(PY) -m ruff check gmsa_integrations tests examples
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check gmsa_integrations tests examples
	$(PY) -m ruff format --check gmsa_integrations tests examples

clean:
	rm -rf $(VENV) build *.egg-info

# The embedded default model's recipe (docs: gmsa_integrations/default_model/MODEL_CARD.md).
# About 80 minutes on 2 CPU cores; every step is an ordinary `gmsa` command.
DM := build/dm
GMSA := $(PY) -m gmsa_integrations
AE_FLAGS := --backbone $(DM)/backbone2 --data $(DM)/data_ae/ae_train.jsonl --rates 4,8 --encoder-layers 4 \
	--lsa-layers 1 --lora-r 64 --lora-alpha 64 --ae-decoder full --learning-rate 1e-3 --warmup-steps 30 \
	--batch-size 16 --max-steps 400 --save-steps 100000 --logging-steps 20 --no-progress
default-model: $(STAMP)
	$(GMSA) data synth --out $(DM)/data --seed 0
	$(GMSA) data synth --out $(DM)/data_ae --seed 1 --train-worlds 20
	$(GMSA) train backbone --ae-data $(DM)/data/ae_train.jsonl --qa-data $(DM)/data/qa_train.jsonl \
		--output-dir $(DM)/backbone --vocab-size 1024 --hidden 256 --layers 4 --heads 4 --intermediate 688 \
		--max-steps 600 --learning-rate 2e-3 --warmup-steps 30 --logging-steps 20 --no-progress
	$(GMSA) train backbone --init $(DM)/backbone --ae-data $(DM)/data/ae_train.jsonl \
		--qa-data $(DM)/data/qa_train.jsonl --restate-data $(DM)/data_ae/ae_train.jsonl --max-qa-rows 3000 \
		--output-dir $(DM)/backbone2 --max-steps 400 --learning-rate 1e-3 --warmup-steps 20 --logging-steps 20 \
		--no-progress
	$(GMSA) train ae $(AE_FLAGS) --output-dir $(DM)/ae
	$(GMSA) train ae $(AE_FLAGS) --output-dir $(DM)/icae --paradigm memory-tokens
	$(GMSA) train keft --init $(DM)/ae --data $(DM)/data/qa_train.jsonl --output-dir $(DM)/keft \
		--keft-mode full --learning-rate 5e-4 --warmup-steps 20 --batch-size 16 --max-steps 300 \
		--save-steps 100000 --logging-steps 20 --no-progress
	$(GMSA) export --model $(DM)/keft --out gmsa_integrations/default_model --dtype float16
