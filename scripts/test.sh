#!/usr/bin/env bash
# Sets up .venv and runs every test, slow ones included (what CI runs), then the xla lane
# (scripts/test_xla.sh, its own environment with torch 2.9.0 + torch-xla 2.9.0). Extra arguments go to
# the main lane's pytest; HATCH_NEURON_SKIP_XLA_LANE=1 skips the xla lane (it says so).
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$PY" -m ruff check hatch_neuron tests bench example_project scripts
"$PY" -m ruff format --check hatch_neuron tests bench example_project scripts
"$PY" -m pytest -m "slow or not slow" "$@"
if [ "${HATCH_NEURON_SKIP_XLA_LANE:-}" = 1 ]; then
  echo "== xla lane SKIPPED (HATCH_NEURON_SKIP_XLA_LANE=1)"
else
  echo "== xla lane"
  env -u PIP_CONSTRAINT -u PIP_BUILD_CONSTRAINT bash "$ROOT/scripts/test_xla.sh"
fi
