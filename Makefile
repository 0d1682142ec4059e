# landeco: `make run` (everything, then serve) and `make test` (everything, then the suite).
# Both rest on `make setup`, which installs only what is missing.

VENV      ?= .venv
# Debian's own Python 3.11, so that the venv works for every account (not only root's)
PYTHON    ?= /usr/bin/python3
BIN       := $(VENV)/bin
# PostgreSQL + PostGIS for the store, GDAL's command-line tools for the interop tests,
# Chromium for the browser tests, Noto CJK for Chinese text on printed maps, hey (HTTP load) for bench/.
APT_PACKAGES := postgresql postgresql-postgis gdal-bin python3-venv chromium fonts-noto-cjk hey

.PHONY: setup apt venv assets run test lint db demo clean

setup: apt venv assets

apt:
	@sh scripts/apt-ensure.sh $(APT_PACKAGES)

venv: $(VENV)/.installed

# Leaflet and friends, served by landeco itself (no CDN): see assets/package.json
assets:
	@sh scripts/install-assets.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

db: setup
	$(BIN)/landeco db up
	$(BIN)/landeco db migrate

demo: db
	$(BIN)/landeco demo

run: demo
	$(BIN)/landeco serve

lint: venv
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/landeco db up
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	-$(BIN)/landeco db down
	rm -rf $(VENV) .landeco .pytest_cache
