# Sourced by scripts/test_xla.sh: creates (or reuses) the xla lane's environment, torch 2.9.0 + torch-xla
# 2.9.0 (a CUDA build of torch, ~7 GB, ~3 min to install), kept outside the checkout so that every clone on
# this machine reuses it: $HATCH_NEURON_CI_CACHE (default ~/.cache/hatch-neuron-ci)/xla-<hash of the
# requirements file>. A lock serialises set-ups; a marker file says the set-up finished.
# hatch-neuron itself is reinstalled from the checkout on every run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/scripts/xla-requirements.txt"
export PIP_CONSTRAINT="$REQUIREMENTS" PIP_BUILD_CONSTRAINT="$REQUIREMENTS" PIP_DISABLE_PIP_VERSION_CHECK=1
key="$(sha256sum < "$REQUIREMENTS" | cut -c1-16)"
CACHE="${HATCH_NEURON_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hatch-neuron-ci}"
XLA_VENV="$CACHE/xla-$key"
XLA_PY="$XLA_VENV/bin/python"
mkdir -p "$CACHE"
(
  flock 9
  if [ ! -f "$XLA_VENV/.complete" ]; then
    echo "== setting up $XLA_VENV (torch 2.9.0 + torch-xla 2.9.0)"
    rm -rf "$XLA_VENV"
    python3 -m venv "$XLA_VENV"
    "$XLA_PY" -m pip install -q -r "$REQUIREMENTS"
    touch "$XLA_VENV/.complete"
  fi
) 9>"$CACHE/xla-$key.lock"
"$XLA_PY" -m pip install -q --no-deps --force-reinstall --no-build-isolation "$ROOT"
