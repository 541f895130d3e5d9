#!/usr/bin/env bash
# The whole suite: unit tests first (seconds), then integration tests on real QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m tests.guest.build >/dev/null
exec .venv/bin/pytest -q -p no:cacheprovider --timeout=300 tests/unit tests/integration "$@"
