#!/usr/bin/env bash
# The test command of the README (via `make test`): all tiers of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HGUARD_VENV:-.venv}
# lint and type check first: a finding fails the run before the (long) tests start
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"  # what it checks, and how strictly: [tool.mypy] in pyproject.toml
exec "$VENV/bin/python" -m pytest -q "$@"
