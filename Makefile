# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

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
# About 80 minutes on 2 CPU cores; every step is an ordinary `gmsa` command. Each stage is a file
# target, so an interrupted recipe goes on where it stopped and one stage can be run alone (e.g. one
# per call on a lent GPU). Sizes and steps are variables: `make default-model DM_BACKBONE_STEPS=20000`;
# where the environment is already set up (a GPU image): `make default-model PY=python3 DM_SETUP=`.
DM := build/dm
DM_EXPORT := gmsa_integrations/default_model
GMSA := $(PY) -m gmsa_integrations
DM_VOCAB := 1024
DM_HIDDEN := 256
DM_LAYERS := 4
DM_HEADS := 4
DM_INTERMEDIATE := 688
DM_BATCH := 16
DM_BACKBONE_STEPS := 600
DM_RESTATE_STEPS := 400
DM_AE_STEPS := 400
DM_KEFT_STEPS := 300
DM_EVAL_LIMIT := 200
DM_SETUP := $(STAMP)
COMMON := --batch-size $(DM_BATCH) --logging-steps 20 --no-progress
AE_FLAGS := --backbone $(DM)/backbone2 --data $(DM)/data_ae/ae_train.jsonl --rates 4,8 --encoder-layers $(DM_LAYERS) \
	--lsa-layers 1 --lora-r 64 --lora-alpha 64 --ae-decoder full --learning-rate 1e-3 --warmup-steps 30 \
	--max-steps $(DM_AE_STEPS) --save-steps 100000 $(COMMON)

.PHONY: default-model default-model-eval
default-model: $(DM_EXPORT)/gmsa_weights.safetensors

$(DM)/data/qa_train.jsonl: | $(DM_SETUP)
	$(GMSA) data synth --out $(DM)/data --seed 0
$(DM)/data_ae/ae_train.jsonl: | $(DM_SETUP)
	$(GMSA) data synth --out $(DM)/data_ae --seed 1 --train-worlds 20
$(DM)/backbone/model.safetensors: $(DM)/data/qa_train.jsonl
	$(GMSA) train backbone --ae-data $(DM)/data/ae_train.jsonl --qa-data $(DM)/data/qa_train.jsonl \
		--output-dir $(DM)/backbone --vocab-size $(DM_VOCAB) --hidden $(DM_HIDDEN) --layers $(DM_LAYERS) \
		--heads $(DM_HEADS) --intermediate $(DM_INTERMEDIATE) --max-steps $(DM_BACKBONE_STEPS) \
		--learning-rate 2e-3 --warmup-steps 30 $(COMMON)
$(DM)/backbone2/model.safetensors: $(DM)/backbone/model.safetensors $(DM)/data_ae/ae_train.jsonl
	$(GMSA) train backbone --init $(DM)/backbone --ae-data $(DM)/data/ae_train.jsonl \
		--qa-data $(DM)/data/qa_train.jsonl --restate-data $(DM)/data_ae/ae_train.jsonl --max-qa-rows 3000 \
		--output-dir $(DM)/backbone2 --max-steps $(DM_RESTATE_STEPS) --learning-rate 1e-3 --warmup-steps 20 $(COMMON)
$(DM)/ae/gmsa_weights.safetensors: $(DM)/backbone2/model.safetensors
	$(GMSA) train ae $(AE_FLAGS) --output-dir $(DM)/ae
$(DM)/icae/gmsa_weights.safetensors: $(DM)/backbone2/model.safetensors
	$(GMSA) train ae $(AE_FLAGS) --output-dir $(DM)/icae --paradigm memory-tokens
$(DM)/keft/gmsa_weights.safetensors: $(DM)/ae/gmsa_weights.safetensors
	$(GMSA) train keft --init $(DM)/ae --data $(DM)/data/qa_train.jsonl --output-dir $(DM)/keft \
		--keft-mode full --learning-rate 5e-4 --warmup-steps 20 --max-steps $(DM_KEFT_STEPS) --save-steps 100000 \
		$(COMMON)
$(DM_EXPORT)/gmsa_weights.safetensors: $(DM)/keft/gmsa_weights.safetensors
	$(GMSA) export --model $(DM)/keft --out $(DM_EXPORT) --dtype float16

# The model card's tables: QA on the exported model, reconstruction on the autoencoder vs ICAE-style.
default-model-eval: $(DM_EXPORT)/gmsa_weights.safetensors $(DM)/icae/gmsa_weights.safetensors
	$(GMSA) eval qa --data $(DM)/data/qa_test.jsonl --rates 4,8 --limit $(DM_EVAL_LIMIT) --model $(DM_EXPORT) \
		--json $(DM)/eval/qa.json --plot $(DM)/eval/qa.png
	$(GMSA) eval recon --data $(DM)/data/ae_test.jsonl --rates 4,8 --limit 100 --model $(DM)/ae \
		--baseline $(DM)/icae --json $(DM)/eval/recon.json --plot $(DM)/eval/recon.png
