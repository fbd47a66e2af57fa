"""How build time, memory, import and first calls grow with model size and model count (issue 14's goals).

Sizes: BERT-base (110M parameters, ~420 MB artifact) and BERT-large (335M, ~1.3 GB), random init from
transformers' own ``BertConfig`` (no downloads), inputs ids and mask ``[1, 128]`` int64, target ``cpu``.
For each size, side by side in one run:

1. ad hoc:  the script users write today, in one fresh process: build the model, ``torch.jit.trace``,
            ``torch.jit.freeze``, save, load back, compare with eager.
2. cold:    ``pip wheel --no-build-isolation --no-deps`` with an empty cache (``HATCH_NEURON_CACHE_DIR``
            fresh). Goals: <= 2x the ad-hoc script's time, peak RSS <= 1.5x.
3. warm:    the same build again (the cache holds the artifact). Goal: <= 0.5x the ad-hoc script.
4. import:  in fresh interpreters after ``import torch``, ``import <pkg>.compiled`` (loads the model,
            checks its sha256, warms it up) versus a bare ``torch.jit.load`` of the installed file. Goals:
            <= 1.3x the time, peak RSS <= 1.2x.
            The loader is timed with its warm-up calls (``warmup = 2``, the default: the cost moved out of
            the first calls) and without (``HATCH_NEURON_WARMUP=0``), once the file's verification stamp
            exists (every import after the first), and hashing the file (``HATCH_NEURON_VERIFY=always``,
            what the first import does).
5. first:   after that import, the slowest of the first 5 calls against the median of the next 20. Goal:
            <= 3x.

Counts: 1, 4 and 16 small BERT models (2 layers, hidden 128): a cold ``pip wheel`` versus one process
doing the same work in a loop (build, trace, freeze, save, load, compare). Goal: <= 2x.

Peak RSS is ``ru_maxrss`` of the largest process of the measured command (its process tree's biggest
member, not a sum). Run: ``.venv/bin/python bench/bench_scale.py [--quick] [--sizes base,large]
[--counts 1,4,16] [--json PATH]`` (``--counts 0``: none); ``--quick``: BERT-base and counts 1 and 4.
These are numbers for the portable ``cpu`` target on the host CPU, not for Neuron devices.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench_core import clean_env, install, table, write_project

PACKAGE = "scalepkg"
SIZES = {
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
    "small": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
}
SEQ = 128
NETS = textwrap.dedent(
    """\
    import torch
    from transformers import BertConfig, BertModel

    SIZES = {sizes!r}


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
).format(sizes=SIZES)
INPUTS = f"""inputs = [
  {{ shape = [1, {SEQ}], dtype = "int64", low = 0, high = 30522 }},
  {{ shape = [1, {SEQ}], dtype = "int64", low = 1, high = 2 }},
]
"""
#: The ad-hoc script: every model of the project, one after another, in one process.
AD_HOC = textwrap.dedent(
    """\
    import sys, tempfile, torch
    sys.path.insert(0, sys.argv[1])
    from {package}.nets import make
    out = tempfile.mkdtemp()
    for index, (size, seed) in enumerate({models!r}):
        model = make(size, seed)
        ids = torch.randint(0, 30522, (1, {seq})); mask = torch.ones(1, {seq}, dtype=torch.int64)
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(model, (ids, mask)).eval())
            torch.jit.save(traced, f"{{out}}/m{{index}}.pt")
            loaded = torch.jit.load(f"{{out}}/m{{index}}.pt")
            assert torch.allclose(loaded(ids, mask), model(ids, mask), rtol=1e-3, atol=1e-4)
    """
)
#: Run in a fresh interpreter: import time and peak RSS of loading, then the first calls.
IMPORT = textwrap.dedent(
    """\
    import json, resource, statistics, sys, time, torch
    ids = torch.randint(0, 30522, (1, {seq})); mask = torch.ones(1, {seq}, dtype=torch.int64)
    start = time.perf_counter()
    if sys.argv[1] == "bare":
        model = torch.jit.load(sys.argv[2])
    else:
        from {package}.compiled import m0 as model
    seconds = time.perf_counter() - start
    calls = []
    with torch.no_grad():
        for _ in range(25):
            t = time.perf_counter(); model(ids, mask); calls.append(time.perf_counter() - t)
    print(json.dumps({{"s": seconds, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                       "first": max(calls[:5]), "steady": statistics.median(calls[5:])}}))
    """
)


def measured(cmd: list[Any], env: dict[str, str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes, the command's largest process) and output of ``cmd``, run in a fresh
    wrapper process so that its children's ``ru_maxrss`` is the command's alone."""
    wrapper = (
        "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.stdout + r.stderr); "
        "print(json.dumps([r.returncode, time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *map(str, cmd)], env=env, cwd=cwd, capture_output=True, text=True
    )
    lines = result.stdout.rstrip().splitlines()
    code, seconds, rss = json.loads(lines[-1])
    if code != 0:
        raise SystemExit(f"command failed ({code}): {cmd}\n" + "\n".join(lines[-60:]))
    return seconds, rss, "\n".join(lines[:-1])


def project(work: Path, models: list[tuple[str, int]]) -> Path:
    toml = '[tool.neuron]\ntargets = ["cpu"]\n'
    nets = NETS
    for index, (size, seed) in enumerate(models):
        nets += f"\n\ndef make_m{index}() -> Encoder:\n    return make({size!r}, {seed})\n"
        toml += f'\n[tool.neuron.models.m{index}]\nfactory = "{PACKAGE}.nets:make_m{index}"\n' + INPUTS
    return write_project(work / "project", PACKAGE, nets, toml)


def wheel_cmd(root: Path, out: Path) -> list[Any]:
    return [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", out, root]


def bench_models(work: Path, models: list[tuple[str, int]], imports: bool) -> dict[str, Any]:
    root = project(work, models)
    ad_s, ad_rss, _ = measured(
        [sys.executable, "-c", AD_HOC.format(package=PACKAGE, models=models, seq=SEQ), root], clean_env()
    )
    env = clean_env(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(work / "cache"))
    cold_s, cold_rss, _ = measured(wheel_cmd(root, work / "cold"), env)
    warm_s, _, _ = measured(wheel_cmd(root, work / "warm"), env)
    row = {"ad_hoc_s": ad_s, "ad_hoc_rss": ad_rss, "cold_s": cold_s, "cold_rss": cold_rss, "warm_s": warm_s}
    if imports:
        [wheel] = (work / "cold").glob(f"{PACKAGE}-*.whl")
        site = install(wheel, work / "site")
        [artifact] = (site / PACKAGE / "_hatch_neuron").glob("m0*.pt")
        code = IMPORT.format(package=PACKAGE, seq=SEQ)
        stamps = str(work / "stamps")
        settings = {
            "bare": {},
            "loader": {},
            "nowarm": {"HATCH_NEURON_WARMUP": "0"},
            "hashed": {"HATCH_NEURON_WARMUP": "0", "HATCH_NEURON_VERIFY": "always"},
        }
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in settings}
        time.sleep(2.1)  # a file changed in the last 2 s gets no verification stamp
        for turn in range(4):  # interleaved; round 0 (untimed) verifies the file and stamps it
            for kind, extra in settings.items():
                out = subprocess.run(
                    [sys.executable, "-c", code, kind, artifact],
                    env=clean_env(PYTHONPATH=str(site), HATCH_NEURON_STAMPS=stamps, **extra),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                if turn:
                    runs[kind].append(json.loads(out.strip().splitlines()[-1]))
        for kind, results in runs.items():
            row[f"{kind}_import_s"] = statistics.median(r["s"] for r in results)
            row[f"{kind}_rss"] = statistics.median(r["rss"] for r in results)
            row[f"{kind}_first_ratio"] = statistics.median(r["first"] / r["steady"] for r in results)
    return row


def verdict(value: float, goal: float) -> str:
    return f"{value:.2f}x (goal <= {goal}x: {'MET' if value <= goal else 'NOT MET'})"


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


def size_rows(row: dict[str, Any]) -> list[list[str]]:
    rows = [
        [label, f"{row[ours] / scale:.2f}", f"{row[base] / scale:.2f}", verdict(row[ours] / row[base], goal)]
        for label, ours, base, goal, scale in GOALS
    ]
    first = row["loader_first_ratio"]
    return [
        *rows,
        ["first/steady call", f"{first:.2f}", f"{row['bare_first_ratio']:.2f} (bare)", verdict(first, 3)],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--counts", default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = (args.sizes or ("base" if args.quick else "base,large")).split(",")
    counts = [int(c) for c in (args.counts or ("1,4" if args.quick else "1,4,16")).split(",") if c != "0"]
    results: dict[str, Any] = {"sizes": {}, "counts": {}}
    gib = 1024**3
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-scale-{size}-") as work:
            row = bench_models(Path(work), [(size, 0)], imports=True)
        results["sizes"][size] = row
        print(f"\n== BERT-{size}: ad hoc {row['ad_hoc_s']:.1f} s / {row['ad_hoc_rss'] / gib:.2f} GiB")
        print(table(["measure", "ours", "baseline", "ratio"], size_rows(row)))
    for count in counts:
        with tempfile.TemporaryDirectory(prefix=f"bench-scale-{count}-") as work:
            row = bench_models(Path(work), [("small", seed) for seed in range(count)], imports=False)
        results["counts"][count] = row
        print(
            f"\n== {count} small model(s): cold pip wheel {row['cold_s']:.1f} s, one-process script "
            f"{row['ad_hoc_s']:.1f} s: {verdict(row['cold_s'] / row['ad_hoc_s'], 2)}; "
            f"warm {row['warm_s']:.1f} s"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
