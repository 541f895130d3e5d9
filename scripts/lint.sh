#!/usr/bin/env bash
# Lint: ruff (pyproject.toml [tool.ruff]) over the whole tree and mypy ([tool.mypy]) over src/.
# Exits non-zero on any finding; `make test` runs it before the tests.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
echo "lint: ruff check"
.venv/bin/ruff check . || status=1
echo "lint: mypy"
.venv/bin/mypy || status=1
exit $status
