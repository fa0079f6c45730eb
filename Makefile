# Two set-up commands, each enough on a fresh machine:
#   make demo   - create .venv if needed, install pinned dependencies, run the main job on the built-in case
#   make test   - same set-up plus the Slicer compatibility environments, then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cervicalai-installed

.PHONY: demo test venv compat lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt requirements/nnunet-nodeps.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# torch 2.13.0 CPU build is taken from local disk where present (see docs); everything else is pinned.
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[research,test]"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nnunet-nodeps.txt
	@touch $(STAMP)

demo: venv
	$(BIN)/cervicalai demo

# One environment per supported 3D Slicer version (5.10, 5.12, 5.13 preview) standing for its Python:
# Python 3.12 (pyenv's, or $$CERVICALAI_COMPAT_PYTHON312), the packages that Slicer bundles (pins read
# from its source, requirements/compat/), slicer-core, SlicerRadiomics' packages and what the hub
# installs. Cached in .compat-envs/, rebuilt only when a pin file or the build script changes.
compat: venv
	$(BIN)/python Testing/compat/build_env.py

# pytest exits 5 when it collected no tests: a suite that ran nothing has not passed.
test: venv compat
	@$(BIN)/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; \
	exit $$status

lint: venv
	$(BIN)/ruff check CervicalAI CervicalAISegment CervicalAIPredict Testing

bench: venv
	$(BIN)/python Testing/benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .compat-envs
