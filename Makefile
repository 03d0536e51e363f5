# es-compact: `make run` and `make test` are all a new user needs (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The main job, briefly: 5 ARS iterations of a KAMA policy on HalfCheetah-v5 with every core.
run: $(STAMP)
	$(BIN)/es-compact params --env HalfCheetah-v5 --arch kama --hidden 64 --rotations 200
	$(BIN)/es-compact train --env HalfCheetah-v5 --arch kama --iterations 5 --eval-every 5 \
		--out runs/quickstart --overwrite
	$(BIN)/es-compact eval runs/quickstart --episodes 3

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/es-compact bench forward

# KAMA-NN paper, Figures 1 and 2 (angular-kernel estimators): quick r by default, FULL=1 for r=1000.
.PHONY: fig1 fig2 kernels kernel-bias
fig1: $(STAMP)
	$(BIN)/es-compact kernels mse --reps $(if $(FULL),1000,100)

fig2: $(STAMP)
	$(BIN)/es-compact kernels gram --reps $(if $(FULL),1000,10)

kernels: fig1 fig2

kernel-bias: $(STAMP)
	$(BIN)/es-compact kernels bias

# KAMA-NN paper, Section 5: Givens coordinate descent on SO(d); FULL=1 lets d = 64 converge.
.PHONY: givens
givens: $(STAMP)
	$(BIN)/es-compact givens --benchmark $(if $(FULL),--full,)

# The papers' experiments with ES (README, "Paper experiments"): quick forms by default, FULL=1
# for the full ones. Re-running skips finished runs and resumes interrupted ones: quick runs in
# runs/paper/ (not committed), full runs in results/runs/ (finished ones are committed).
.PHONY: table1 rl ablation strategies dcnn tables paper
table1: $(STAMP)
	$(BIN)/es-compact experiment table1

rl: $(STAMP)
	$(BIN)/es-compact experiment rl $(if $(FULL),--full --runs results/runs,)

ablation: $(STAMP)
	$(BIN)/es-compact experiment ablation $(if $(FULL),--full --runs results/runs,)

# Every strategy on linear and kama; its ARS cells are rl's runs (found finished, not retrained).
strategies: $(STAMP)
	$(BIN)/es-compact experiment strategies $(if $(FULL),--full --runs results/runs,)

# One BLAS thread: L-BFGS-B's small vector operations are slower with several (Theorem 2 fit).
dcnn: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/es-compact experiment dcnn $(if $(FULL),--full --runs results/runs,)
	$(BIN)/es-compact experiment dcnn-init $(if $(FULL),--full --runs results/runs,)

tables: $(STAMP)
	$(MAKE) FULL= table1 rl ablation strategies dcnn kernels givens

paper: $(STAMP)
	$(MAKE) FULL=1 table1 rl ablation strategies dcnn kernels givens

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
