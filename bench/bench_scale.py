"""How build time, memory, import and first calls grow with model size and count (issue 14's goals).

BERT-base and BERT-large (random init, ids and mask ``[1, 128]``, target ``cpu``): cold and warm ``pip
wheel`` against the ad-hoc script users write (trace, freeze, save, load, compare), peak RSS, ``import
pkg.compiled`` against a bare ``torch.jit.load``, first calls against steady ones; 1, 4 and 16 small
models: a cold ``pip wheel`` against one process doing the same. Each ratio beside its goal (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness as h

PACKAGE = "scalepkg"
SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "small": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
}
SEQ = 128
NETS = f"""\
import torch
from transformers import BertConfig, BertModel

SIZES = {SIZES!r}


class Encoder(torch.nn.Module):
    def __init__(self, size: str, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        config = BertConfig(**SIZES[size], vocab_size=30522, attn_implementation="eager")
        self.bert = BertModel(config, add_pooling_layer=False).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def make(size: str = "base", seed: int = 0) -> Encoder:
    return Encoder(size, seed).eval()
"""
INPUTS = f"""inputs = [
  {{ shape = [1, {SEQ}], dtype = "int64", low = 0, high = 30522 }},
  {{ shape = [1, {SEQ}], dtype = "int64", low = 1, high = 2 }},
]
"""
#: (measure, ours, baseline, goal for ours / baseline, scale of the printed values)
GOALS = [
    ("cold pip wheel s", "cold_s", "ad_hoc_s", 2, 1),
    ("cold peak RSS GiB", "cold_rss", "ad_hoc_rss", 1.5, 1024**3),
    ("warm pip wheel s", "warm_s", "ad_hoc_s", 0.5, 1),
    ("import s", "loader_import_s", "bare_import_s", 1.3, 1),
    ("import s, warmup = 0", "nowarm_import_s", "bare_import_s", 1.3, 1),
    ("import s, warmup = 0, hashing", "hashed_import_s", "bare_import_s", 1.3, 1),
    ("import peak RSS GiB", "loader_rss", "bare_rss", 1.2, 1024**3),
]
#: The imports timed, and their environment: loader with a stamp, without warm-up, hashing the file
IMPORTS = dict(bare={}, loader={}, nowarm={"HATCH_NEURON_WARMUP": "0"})
IMPORTS["hashed"] = {**IMPORTS["nowarm"], "HATCH_NEURON_VERIFY": "always"}


def inputs() -> tuple[Any, Any]:
    import torch

    return torch.randint(0, 30522, (1, SEQ)), torch.ones(1, SEQ, dtype=torch.int64)


def child_ad_hoc(payload: dict[str, Any]) -> None:
    """The ad-hoc script: every model of the project, one after another, in one process."""
    import torch

    sys.path.insert(0, payload["project"])
    from scalepkg.nets import make

    out = Path(payload["out"])
    out.mkdir()
    for index, (size, seed) in enumerate(payload["models"]):
        model, args = make(size, seed), inputs()
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(model, args).eval())
            torch.jit.save(traced, f"{out}/m{index}.pt")
            loaded = torch.jit.load(f"{out}/m{index}.pt")
            assert torch.allclose(loaded(*args), model(*args), rtol=1e-3, atol=1e-4)


def child_import(payload: dict[str, Any]) -> dict[str, float]:
    """Import time and peak RSS of loading the model, then the first calls against steady ones."""
    import statistics

    import torch

    args, start = inputs(), time.perf_counter()
    if payload["kind"] == "bare":
        model = torch.jit.load(payload["artifact"])
    else:
        from scalepkg.compiled import m0 as model
    seconds, calls = time.perf_counter() - start, []
    with torch.no_grad():
        for _ in range(25):
            start = time.perf_counter()
            model(*args)
            calls.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"s": seconds, "rss": rss, "first": max(calls[:5]), "steady": statistics.median(calls[5:])}


def child_measure(payload: dict[str, Any]) -> list[Any]:
    """Run a command: [exit code, seconds, its largest process's peak RSS], its output printed before."""
    start = time.perf_counter()
    done = subprocess.run(payload["cmd"], capture_output=True, text=True)
    print(done.stdout + done.stderr)
    seconds, rss = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return [done.returncode, seconds, rss * 1024]


def measured(cmd: list[Any], env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of ``cmd``, run under a fresh process whose only child it is."""
    payload = json.dumps({"cmd": [str(c) for c in cmd]})
    cmd_line = [sys.executable, __file__, "--child", "measure", "--payload", payload]
    lines = h.run(cmd_line, env).stdout.splitlines()
    code, seconds, rss = json.loads(lines[-1])
    if code != 0:
        raise SystemExit(f"command failed ({code}): {cmd}\n" + "\n".join(lines[-60:]))
    return seconds, rss


def bench_models(work: Path, models: list[tuple[str, int]], imports: bool) -> dict[str, Any]:
    toml = '[tool.neuron]\ntargets = ["cpu"]\n'
    nets = NETS
    for index, (size, seed) in enumerate(models):
        nets += f"\n\ndef make_m{index}() -> Encoder:\n    return make({size!r}, {seed})\n"
        toml += f'\n[tool.neuron.models.m{index}]\nfactory = "{PACKAGE}.nets:make_m{index}"\n' + INPUTS
    root = h.write_project(work / "project", PACKAGE, nets, toml)
    payload = json.dumps({"project": str(root), "models": models, "out": str(work / "ad_hoc")})
    ad_hoc = [sys.executable, __file__, "--child", "ad_hoc", "--payload", payload]
    row = dict(zip(("ad_hoc_s", "ad_hoc_rss"), measured(ad_hoc, h.clean_env()), strict=True))
    env = h.clean_env(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(work / "cache"))
    row["cold_s"], row["cold_rss"] = measured([*h.PIP_WHEEL, "-w", work / "cold", root], env)
    row["warm_s"], _ = measured([*h.PIP_WHEEL, "-w", work / "warm", root], env)
    if imports:
        [wheel] = (work / "cold").glob(f"{PACKAGE}-*.whl")
        site = h.install(wheel, work / "site")
        [artifact] = (site / PACKAGE / "_hatch_neuron").glob("m0*.pt")
        stamps = {"HATCH_NEURON_STAMPS": str(work / "stamps")}
        time.sleep(2.1)  # a file changed in the last 2 s gets no verification stamp

        def load(kind: str) -> dict[str, float]:
            payload = {"kind": kind, "artifact": str(artifact)}
            return h.child(__file__, "import", payload, site, work, **stamps, **IMPORTS[kind])

        for kind in IMPORTS:  # untimed: the first import verifies the file and stamps it
            load(kind)
        for kind, results in h.alternate(list(IMPORTS), 5, load).items():
            row[f"{kind}_import_s"] = h.median(r["s"] for r in results)
            row[f"{kind}_rss"] = h.median(r["rss"] for r in results)
            row[f"{kind}_first_ratio"] = h.median(r["first"] / r["steady"] for r in results)
    shutil.rmtree(work)  # BERT-large leaves several GB
    return row


OPTIONS = dict(
    sizes={"help": "comma-separated: base, large, small (default base,large)"},
    counts={"help": "comma-separated numbers of small models (default 1,4,16; 0: none)"},
)
MODES = {"ad_hoc": child_ad_hoc, "import": child_import, "measure": child_measure}


@h.bench("scale", h.CPU, {}, "BERT-base, 1 and 4 small models", MODES, **OPTIONS)
def main(args: argparse.Namespace, _meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    sizes = (args.sizes or ("base" if args.quick else "base,large")).split(",")
    counts = [int(c) for c in (args.counts or ("1,4" if args.quick else "1,4,16")).split(",") if c != "0"]
    results.update(sizes={}, counts={})
    for size in sizes:
        row = results["sizes"][size] = bench_models(work / size, [(size, 0)], imports=True)
        print(f"\n== BERT-{size}: ad hoc {row['ad_hoc_s']:.1f} s / {row['ad_hoc_rss'] / 1024**3:.2f} GiB")
        rows = [
            [label, f"{row[ours] / scale:.2f}", f"{row[base] / scale:.2f}"]
            for label, ours, base, _, scale in GOALS
        ]
        for cells, (_, ours, base, goal, _) in zip(rows, GOALS, strict=True):
            cells.append(h.goal(row[ours] / row[base], goal))
        first, bare = row["loader_first_ratio"], f"{row['bare_first_ratio']:.2f} (bare)"
        rows.append(["first/steady call", f"{first:.2f}", bare, h.goal(first, 3)])
        print(h.table(["measure", "ours", "baseline", "ratio"], rows))
    for count in counts:
        models = [("small", seed) for seed in range(count)]
        row = results["counts"][count] = bench_models(work / str(count), models, imports=False)
        ratio = h.goal(row["cold_s"] / row["ad_hoc_s"], 2)
        print(
            f"\n== {count} small model(s): cold pip wheel {row['cold_s']:.1f} s, one-process script "
            f"{row['ad_hoc_s']:.1f} s: {ratio}; warm {row['warm_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
