#!/usr/bin/env bash
# The test command of the README (via `make test`): all tiers of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HGUARD_VENV:-.venv}
# lint first: a finding fails the run before the (long) tests start
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest -q "$@"
