"""How the corpus of real architectures (tests/projects/corpus) traces and exports, model by model.

For each model: ``torch.jit.trace`` of the wrapper (outputs flattened, as the build does) at the declared
inputs (seed 0) against eager on fresh inputs (seeds 5, 6; max abs diff), the TracerWarnings it emits
(distinct file:line with counts), and whether ``torch.export.export(wrapper, inputs, strict=False)``
succeeds (first line of the error when not). ``--aoti NAME...`` also compiles those models with
AOTInductor (torch's default flags, not the hook's portable ones) and compares the package with eager
(15-35 s each on 2 CPUs). About 30 s without ``--aoti``.

    .venv/bin/python bench/corpus_probe.py [--json] [names...] [--aoti bert resnet]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "projects" / "corpus"))
sys.path.insert(0, str(ROOT))

from corpus_models import nets  # noqa: E402

from hatch_neuron.compile.inputs import make_inputs  # noqa: E402
from hatch_neuron.runtime.pytree import flatten  # noqa: E402


class Flat(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flatten(self.model(*inputs))[0])


def max_diff(want: tuple[torch.Tensor, ...], got: tuple[torch.Tensor, ...]) -> float:
    return max(float((w.float() - g.float()).abs().max()) for w, g in zip(want, got, strict=True))


def short_site(filename: str, lineno: int) -> str:
    parts = Path(filename).parts
    tail = parts[parts.index("transformers") :] if "transformers" in parts else parts[-2:]
    return f"{'/'.join(tail)}:{lineno}"


def probe(name: str, aoti: bool) -> dict[str, object]:
    specs = nets.INPUTS[name]
    wrapper = Flat(getattr(nets, f"make_{name}")().eval()).eval()
    example = make_inputs(specs, 0)
    row: dict[str, object] = {"model": name}
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        start = time.perf_counter()
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        row["trace_s"] = round(time.perf_counter() - start, 2)
    sites = collections.Counter(
        short_site(w.filename, w.lineno) for w in caught if issubclass(w.category, torch.jit.TracerWarning)
    )
    row["tracer_warnings"] = dict(sites)
    with torch.no_grad():
        fresh = [make_inputs(specs, seed) for seed in (5, 6)]
        row["trace_max_diff"] = max(max_diff(wrapper(*x), traced(*x)) for x in fresh)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            exported = torch.export.export(wrapper, example, strict=False)
            row["export_s"] = round(time.perf_counter() - start, 2)
        row["export"] = "ok"
        with torch.no_grad():
            row["export_max_diff"] = max(max_diff(wrapper(*x), exported.module()(*x)) for x in fresh)
    except Exception as exc:  # reported, not raised
        row["export"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
        return row
    if aoti:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            path = torch._inductor.aoti_compile_and_package(exported, package_path=f"{tmp}/{name}.pt2")
            row["aoti_s"] = round(time.perf_counter() - start, 1)
            loaded = torch._inductor.aoti_load_package(path)
            with torch.no_grad():
                row["aoti_max_diff"] = max(max_diff(wrapper(*x), tuple(loaded(*x))) for x in fresh)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(nets.INPUTS))
    parser.add_argument("--aoti", nargs="*", default=[], help="also compile these with AOTInductor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in [*args.names, *(a for a in args.aoti if a not in args.names)]:
        rows.append(probe(name, name in args.aoti))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| model | trace == eager (max diff) | tracer warnings (site: count) | export |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        sites = ", ".join(f"`{site}`: {count}" for site, count in row["tracer_warnings"].items()) or "none"
        export = row["export"] if row["export"] != "ok" else f"ok ({row['export_max_diff']:.1e})"
        if "aoti_s" in row:
            export += f"; AOTI {row['aoti_s']} s, max diff {row['aoti_max_diff']:.1e}"
        print(f"| {row['model']} | {row['trace_max_diff']:.1e} | {sites} | {export} |")


if __name__ == "__main__":
    main()
