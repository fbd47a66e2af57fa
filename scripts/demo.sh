#!/usr/bin/env bash
# The main job: build example_project into a wheel with real pip (isolated build, portable cpu target),
# install it into a fresh virtual environment, import it and run its compiled models against eager PyTorch.
source "$(dirname "$0")/env.sh"
cd "$ROOT"
OUT="$ROOT/out"
rm -rf "$OUT" && mkdir -p "$OUT/dist"
echo "== building hatch-neuron itself (the build requirement example_project names)"
"$PY" -m pip wheel -q --no-deps -w "$OUT/dist" .
echo "== pip wheel example_project (isolated build; HATCH_NEURON_TARGETS=cpu: no Neuron compiler here)"
start=$(date +%s)
HATCH_NEURON_TARGETS=cpu "$PY" -m pip wheel -v --no-deps --find-links "$OUT/dist" -w "$OUT/dist" ./example_project \
  2>&1 | grep -E "hatch-neuron:|Created wheel|ERROR|Error" || true
ls "$OUT"/dist/example_models-*.whl >/dev/null
echo "   built in $(( $(date +%s) - start )) s: $(ls "$OUT"/dist/example_models-*.whl)"
echo "== installing it into a fresh virtual environment ($OUT/venv)"
python3 -m venv "$OUT/venv"
"$OUT/venv/bin/pip" install -q "torch==$TORCH_VERSION"
"$OUT/venv/bin/pip" install -q --find-links "$OUT/dist" "$OUT"/dist/example_models-*.whl numpy
echo "== hatch-neuron inspect"
"$OUT/venv/bin/hatch-neuron" inspect "$OUT"/dist/example_models-*.whl
echo "== running the compiled models"
cd "$OUT" && "$OUT/venv/bin/python" "$ROOT/scripts/run_example_models.py"
