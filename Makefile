# Two set-up commands, each enough on a fresh machine:
#   make demo   - create .venv if needed, install pinned dependencies, run the main job on the built-in case
#   make test   - same set-up, then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cervicalai-installed

.PHONY: demo test venv lint bench clean dicom3tools campaign

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

# dicom3tools' dciodvfy validates the exported DICOM objects in the tests (they skip, saying so, without it).
dicom3tools:
	@command -v dciodvfy >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then apt-get install -y -qq dicom3tools >/dev/null || \
			echo "make: dicom3tools could not be installed; the DICOM validation tests will be skipped" >&2; \
		else echo "make: dciodvfy not found (apt-get install dicom3tools); the DICOM validation tests will be skipped" >&2; fi; }

# pytest exits 5 when it collected no tests: a suite that ran nothing has not passed.
test: venv dicom3tools
	@$(BIN)/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; \
	exit $$status

lint: venv
	$(BIN)/ruff check CervicalAI CervicalAISegment CervicalAIPredict Testing

bench: venv
	$(BIN)/python Testing/benchmarks/run_all.py

# the hostile-input campaign (docs/bad_inputs.md): every case against the real CLI, counts by outcome
campaign: venv dicom3tools
	$(BIN)/python Testing/campaign/run_campaign.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
