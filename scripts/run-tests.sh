#!/usr/bin/env bash
# The whole suite: the linters (ruff, mypy), unit tests (seconds), then integration tests on real QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/lint.sh
.venv/bin/python -m tests.guest.build >/dev/null
exec .venv/bin/pytest -q -p no:cacheprovider --timeout=300 tests/unit tests/integration "$@"
