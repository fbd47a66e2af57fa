# Sourced by the other scripts: creates (or reuses) .venv with the pinned torch and hatch-neuron's test extras.
# The environment is rebuilt when pyproject.toml or this file changes (keyed by their hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# Pin torch in every install, including the isolated build environments that pip creates (PIP_CONSTRAINT
# reaches them; PIP_BUILD_CONSTRAINT is the newer pip's name). An unpinned torch pulls a multi-GB CUDA build.
export PIP_CONSTRAINT="$ROOT/scripts/constraints.txt" PIP_BUILD_CONSTRAINT="$ROOT/scripts/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
key="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/env.sh" "$ROOT/scripts/constraints.txt" | sha256sum | cut -c1-16)"
if [ ! -x "$PY" ] || [ "$(cat "$VENV/.hatch-neuron-env" 2>/dev/null)" != "$key" ]; then
  echo "== setting up $VENV (torch==$TORCH_VERSION)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q "torch==$TORCH_VERSION"
  "$PY" -m pip install -q -e "$ROOT[test]"
  echo "$key" > "$VENV/.hatch-neuron-env"
fi
