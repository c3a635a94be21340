#!/usr/bin/env bash
# The test command of the README (via `make test`): all tiers of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HGUARD_VENV:-.venv}
# lint and type check first: a finding fails the run before the (long) tests start
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"  # what it checks, and how strictly: [tool.mypy] in pyproject.toml
# one worker per CPU (at most 4: each loads models of its own); PYTEST_XDIST_AUTO_NUM_WORKERS=1 runs one, `-n 0` none
exec "$VENV/bin/python" -m pytest -q -n logical --maxprocesses 4 --dist worksteal "$@"
