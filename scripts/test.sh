#!/usr/bin/env bash
# Sets up .venv and runs every test, slow ones included (what CI runs). Extra arguments go to pytest.
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$PY" -m ruff check hatch_neuron tests bench example_project scripts
"$PY" -m pytest -m "slow or not slow" "$@"
