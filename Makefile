# casl — every long run is a target here; `make test` and `make pseudo-labels`
# work on a fresh clone with only Node.js and npm present.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CASL := node bin/casl.js
FIXTURES := data/fixtures
RUNS := runs
PROFILE ?= full
ENTITIES ?= 0
# ENTITIES=1 runs the entity variants (things and stuff as class-agnostic
# masks, tiny-condinst; pipelines/*-entities.yaml) in runs/<stage>-entities/.
E := $(if $(filter 1,$(ENTITIES)),-entities,)
MASKS ?= 0
# MASKS=1 trains the object labeler as tiny-condinst (boxes and instance
# masks of the labeled split's objects, class-agnostic) in runs/labeler-masks/;
# `make eval EVAL_MODEL=runs/labeler-masks/model` then scores boxes and masks.
M := $(if $(filter 1,$(MASKS)),-masks,)

.PHONY: help install build native test fixtures labeler pseudo-labels warmup finetune eval ca-ssl bench clean

help:
	@echo "make pseudo-labels   the main job: fixtures, a labeler, pseudo labels of the unlabeled split"
	@echo "make test            the tap tests (under 10 minutes)"
	@echo "make fixtures | labeler | warmup | finetune | eval | ca-ssl | bench | build | clean"

# npm ci on first use, and again whenever the lock file changes.
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

# tsc is incremental enough for us: rebuild when any source changes.
dist/.built: node_modules/.installed tsconfig.json $(shell find src bench -name '*.ts' 2>/dev/null)
	npx tsc -p tsconfig.json
	@touch $@

# The optional native convolution kernels (native/conv; README "Speed"): a
# build that fails (no g++, no Node headers) leaves the wasm kernels in use.
NATIVE_CONV := native/conv/build/.attempted
$(NATIVE_CONV): native/conv/conv.cc native/conv/binding.gyp native/conv/build.mjs native/build-addon.mjs | node_modules/.installed
	node native/conv/build.mjs

# The JPEG fast path (native/jpeg; README "Decoding and COCO JSON"): a build
# that fails (no libjpeg-turbo headers) leaves sharp decoding every JPEG.
NATIVE_JPEG := native/jpeg/build/.attempted
$(NATIVE_JPEG): native/jpeg/jpeg_letterbox.c native/jpeg/binding.gyp native/jpeg/build.mjs native/build-addon.mjs | node_modules/.installed
	node native/jpeg/build.mjs

native:
	node native/conv/build.mjs
	node native/jpeg/build.mjs

build: dist/.built $(NATIVE_CONV) $(NATIVE_JPEG)

# The test files run side by side, so each model gets one thread unless told.
test: build
	CASL_THREADS=$${CASL_THREADS:-1} npx tap

# Made once; `rm -rf data/fixtures` to make them again after changing the generator.
$(FIXTURES)/.done: | dist/.built
	$(CASL) fixtures --out $(FIXTURES) --seed 1
	@touch $@

fixtures: $(FIXTURES)/.done

# The small sample committed under fixtures/sample; test/fixtures.test.ts
# checks it equals what the generator makes now, so regenerate it after any
# change to src/fixtures. The README's picture, docs/fixtures.png, is made from it.
.PHONY: fixtures-sample
fixtures-sample: build
	$(CASL) fixtures --out fixtures/sample --seed 1 --labeled 12 --unlabeled 24 --val 12 --quiet --montage docs/fixtures.png

# The main job. The labeler is the one `make labeler` trained (runs/labeler/
# model) if there is one, else the one committed under fixtures/labeler (made
# by `make labeler` on the default fixtures; README: Pseudo labels), else it
# is trained now. Pseudo labels left by a run that was stopped are finished
# with --resume, and thrown away when the labeler is newer than they are.
LABELER_CKPT := $(firstword $(patsubst %/model.json,%,$(wildcard $(RUNS)/labeler$(E)/model/model.json fixtures/labeler$(E)/model.json)) $(RUNS)/labeler$(E)/model)
PSEUDO := $(RUNS)/pseudo-labels$(E)/pseudo.jsonl
# The same instances as one pycocotools results array (COCO.loadRes reads it as is; segm with ENTITIES=1).
PSEUDO_RESULTS := $(RUNS)/pseudo-labels$(E)/results.json
HIDDEN_GT := $(FIXTURES)/annotations/unlabeled_hidden_gt$(if $(E),_entities,).json

$(LABELER_CKPT)/model.json: | $(FIXTURES)/.done
	$(MAKE) labeler

# The native kernels too (order-only: building them never redoes the pseudo
# labels): without them a fresh clone ran the job on the wasm kernels alone,
# 2.5 times slower, and the decoder without its JPEG fast path.
$(RUNS)/pseudo-labels$(E)/.done: $(FIXTURES)/.done $(LABELER_CKPT)/model.json | build
	@mkdir -p $(@D)
	@if [ -e $(PSEUDO) ] && [ $(PSEUDO) -ot $(LABELER_CKPT)/model.json ]; then rm -f $(PSEUDO) $(PSEUDO).dropped $(PSEUDO).errors $(PSEUDO_RESULTS); fi
	$(CASL) pseudo-label '$(FIXTURES)/images/unlabeled/*' --root $(FIXTURES)/images/unlabeled \
	  --model $(LABELER_CKPT) --out $(PSEUDO) --gt $(HIDDEN_GT) --coco-results $(PSEUDO_RESULTS) \
	  $(if $(E),--config pipelines/pseudo-labels-entities.yaml,) $(if $(wildcard $(PSEUDO)),--resume,)
	@touch $@

pseudo-labels: $(RUNS)/pseudo-labels$(E)/.done

# Choose δ by looking: the labeler's predictions on the unlabeled split at
# δ = 0 (all it outputs above its 0.05 inference threshold, so the slider can
# go anywhere), in a browser at http://127.0.0.1:$(VIEW_PORT)/, recall
# against the split's hidden ground truth.
VIEW_PORT ?= 8765
VIEW_PRED := $(RUNS)/view/predictions.jsonl
$(VIEW_PRED): $(LABELER_CKPT)/model.json | $(FIXTURES)/.done
	@mkdir -p $(@D)
	$(CASL) pseudo-label '$(FIXTURES)/images/unlabeled/*' --root $(FIXTURES)/images/unlabeled \
	  --model $(LABELER_CKPT) --out $@ --delta 0 --overwrite
.PHONY: view
view: build $(VIEW_PRED)
	$(CASL) view $(VIEW_PRED) --root $(FIXTURES)/images/unlabeled \
	  --gt $(FIXTURES)/annotations/unlabeled_hidden_gt.json --port $(VIEW_PORT)

# CA-SSL's three trainings, defaults in pipelines/<stage>.yaml; each run
# directory runs/<stage>/ holds metrics.jsonl, checkpoints/ and model/ (the
# next stage's input). They always pass --resume: a run that was cut off
# continues from its last checkpoint, a finished one is only re-evaluated.
# TRAIN_FLAGS adds flags, e.g. make labeler TRAIN_FLAGS="--steps 300".
TRAIN_FLAGS ?=
.PHONY: labeler warmup finetune
labeler: build | $(FIXTURES)/.done
	$(CASL) train --stage labeler $(if $(E),--entities,) $(if $(M),--model tiny-condinst,) --out $(RUNS)/labeler$(E)$(M) --resume $(TRAIN_FLAGS)

warmup: build $(RUNS)/pseudo-labels$(E)/.done
	$(CASL) train --stage warmup $(if $(E),--entities,) --train $(PSEUDO) --out $(RUNS)/warmup$(E) --resume $(TRAIN_FLAGS)

$(RUNS)/warmup$(E)/model/model.json:
	$(MAKE) warmup

# From an entity warmup (ENTITIES=1) exactly as from a box one: the finetune
# model takes the parts it has and ignores the mask branch it lacks.
finetune: build | $(RUNS)/warmup$(E)/model/model.json
	$(CASL) train --stage finetune --init $(RUNS)/warmup$(E)/model --out $(RUNS)/finetune$(E) --resume $(TRAIN_FLAGS)

# COCO AP on the val split (casl eval: pycocotools' figures) of a model,
# the finetuned one by default: class-specific, then class-agnostic.
# Predictions are kept in runs/eval/. EVAL_MODEL=runs/labeler/model etc.
# EVAL_IOU lists what to score: bbox, segm or both ("bbox segm", for a
# tiny-condinst model such as runs/labeler-masks/model).
EVAL_MODEL ?= $(RUNS)/finetune$(E)/model
EVAL_IOU ?= $(if $(E),segm,bbox)
EVAL_PRED := $(RUNS)/eval$(E)/val-predictions.jsonl
eval: build | $(FIXTURES)/.done
	@mkdir -p $(dir $(EVAL_PRED))
	$(CASL) ingest '$(FIXTURES)/images/val/*' --root $(FIXTURES)/images/val | \
	  $(CASL) infer --model $(EVAL_MODEL) --root $(FIXTURES)/images/val --quiet > $(EVAL_PRED)
	for iou in $(EVAL_IOU); do \
	  $(CASL) eval --gt $(FIXTURES)/annotations/val$(if $(E),_entities,).json --dets $(EVAL_PRED) --iou $$iou && \
	  $(CASL) eval --gt $(FIXTURES)/annotations/val$(if $(E),_entities,).json --dets $(EVAL_PRED) --iou $$iou --agnostic || exit 1; \
	done

# The CA-SSL experiment end to end (README: The experiment): baseline, CA-SSL,
# the paper's ablations and sweeps, then the table (runs/ca-ssl/table.md, also
# printed) and the report (runs/ca-ssl/report.md). PROFILE=quick or full
# (pipelines/ca-ssl.yaml); every stage is cached under runs/ca-ssl/stages/ by
# the hash of its config and inputs, so a re-run redoes only what changed and
# a cut-off one resumes.
ca-ssl: build | $(FIXTURES)/.done
	$(CASL) experiment --profile $(PROFILE) --out $(RUNS)/ca-ssl
	$(CASL) report --dir $(RUNS)/ca-ssl

bench: build
	$(CASL) bench all

clean:
	rm -rf dist $(RUNS) .tap
