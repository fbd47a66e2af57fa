#!/usr/bin/env bash
# The xla lane: the tests marked `xla` in their own environment (torch 2.9.0 + torch-xla 2.9.0, see
# scripts/xla_env.sh), on torch-xla's CPU device. scripts/test.sh runs it after the main lane.
source "$(dirname "$0")/xla_env.sh"
cd "$ROOT"
PJRT_DEVICE=CPU "$XLA_PY" -m pytest -m xla -p no:cacheprovider "$@"
