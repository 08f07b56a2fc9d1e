# hudhud: `make dev` installs and runs everything locally; `make test` installs and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install redis compose clients prometheus chromium dev test proofs lint bench chaos clean

$(BIN)/hudhud: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/hudhud

install: $(BIN)/hudhud

redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version

# Debian's docker-compose parses docker-compose.yml for tests/test_compose.py (no Docker engine needed).
compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "installing docker-compose from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

# Node and PHP run the README's HTTP API examples in those languages (tests/test_readme.py).
clients:
	@command -v node >/dev/null 2>&1 && php -r 'exit(function_exists("curl_init") ? 0 : 1);' 2>/dev/null || { \
	  echo "installing nodejs, php-cli and php-curl from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs php-cli php-curl >/dev/null; }

# Headless Chromium renders the operator page (tests/test_ops_page.py).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Prometheus and promtool check deploy/prometheus and scrape a real worker (tests/test_monitoring.py).
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  echo "installing prometheus from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

dev: install redis
	$(BIN)/hudhud dev

lint: install
	$(BIN)/ruff check hudhud/__init__.py hudhud/__main__.py hudhud/integrations config tasks worker tests
	$(BIN)/ruff format --check hudhud/__init__.py hudhud/__main__.py hudhud/integrations config tasks worker
	$(BIN)/mypy

# The suite in two runs: most tests three at a time, then the timed proofs alone.
test: install redis compose clients prometheus chromium lint
	PYTHONHASHSEED=0 $(BIN)/python -m pytest -q -n 3 -m "not serial"
	$(BIN)/python -m pytest -q -m "serial and not proof"

# The longest proofs, alone (a worker SIGKILLed at random moments while it takes foreign sends).
proofs: install redis
	$(BIN)/python -m pytest -q -m proof

bench: install redis
	$(BIN)/python bench/run.py

chaos: install redis
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) .hudhud .pytest_cache .mypy_cache .ruff_cache
