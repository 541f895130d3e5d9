# The two commands of README.md: `make demo` (a VM booting and managed) and `make test`.
.PHONY: setup guest demo test unit integration bench clean

setup:
	@scripts/setup.sh

guest: setup
	@.venv/bin/python -m tests.guest.build

demo: setup
	@scripts/demo.sh

test: setup
	@scripts/run-tests.sh

unit: setup
	.venv/bin/pytest -q tests/unit

integration: setup
	.venv/bin/pytest -q tests/integration

bench: setup
	.venv/bin/python -m bench.run

clean:
	rm -rf .venv .cache
