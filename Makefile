# Two set-up commands, each enough on a fresh machine:
#   make demo   - create .venv if needed, install pinned dependencies, run the main job on the built-in case
#   make test   - same set-up plus the Slicer compatibility environments, then the whole test suite
# and one to review contours in the browser:
#   make review-demo - a 3-case synthetic cohort, segmented, served on http://127.0.0.1:8080 (address printed)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cervicalai-installed
# Debian packages of the web review app: Chromium for its browser tests (driven by Playwright; never
# `playwright install`), libatomic1 for Chromium on a minimal Debian, EGL + Mesa's DRI drivers for
# trame-slicer's off-screen rendering on the CPU (without libgl1-mesa-dri Python crashes on the first view).
WEB_DEB_PACKAGES := chromium libatomic1 libegl1 libegl-mesa0 libgl1-mesa-dri
# dicom3tools' dciodvfy validates the exported DICOM objects in the tests (they skip, saying so, without it).
TEST_DEB_PACKAGES := dicom3tools
READER ?= Demo reader

.PHONY: demo test venv compat system-packages lint bench review-demo clean campaign

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt requirements/nnunet-nodeps.txt requirements/web-nodeps.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# torch 2.13.0 CPU build is taken from local disk where present (see docs); everything else is pinned.
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[research,test,web]"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nnunet-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/web-nodeps.txt
	@touch $(STAMP)

# Installs only the packages that are missing (apt-get as root, else sudo -n); elsewhere says what to install.
system-packages:
	@missing=""; \
	if ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "system-packages: not a Debian system; the web review app needs Chromium, EGL and Mesa (browser tests skip without them)" >&2; exit 0; \
	fi; \
	for p in $(WEB_DEB_PACKAGES) $(TEST_DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "system-packages: please install:$$missing (apt-get install --no-install-recommends$$missing)" >&2; exit 1; fi; \
	echo "installing Debian packages:$$missing"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

demo: system-packages venv
	$(BIN)/cervicalai demo

review-demo: system-packages venv
	@test -d review-demo/cohort || $(BIN)/cervicalai synth --cases 3 --seed 424242 --out review-demo/cohort
	$(BIN)/cervicalai review prepare review-demo/cohort
	$(BIN)/cervicalai review serve review-demo/cohort --reader "$(READER)"

# One environment per supported 3D Slicer version (5.10, 5.12, 5.13 preview) standing for its Python:
# Python 3.12 (pyenv's, or $$CERVICALAI_COMPAT_PYTHON312), the packages that Slicer bundles (pins read
# from its source, requirements/compat/), slicer-core, SlicerRadiomics' packages and what the hub
# installs. Cached in .compat-envs/, rebuilt only when a pin file or the build script changes.
compat: venv
	$(BIN)/python Testing/compat/build_env.py

# pytest exits 5 when it collected no tests: a suite that ran nothing has not passed. The 25 slowest
# steps go to the log, to keep the 15-minute budget of a fresh machine in sight.
test: system-packages venv compat
	@$(BIN)/python -m pytest -q --durations=25; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; \
	exit $$status

lint: venv
	$(BIN)/ruff check CervicalAI CervicalAISegment CervicalAIPredict Testing

bench: venv
	$(BIN)/python Testing/benchmarks/run_all.py

# the hostile-input campaign (docs/bad_inputs.md): every case against the real CLI, counts by outcome
campaign: system-packages venv
	$(BIN)/python Testing/campaign/run_campaign.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .compat-envs test-artefacts
