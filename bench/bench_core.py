"""The core costs of hatch-neuron on the portable ``cpu`` target, side by side (see bench/README.md).

1. build:    ``pip wheel`` of example_project (``HATCH_NEURON_TARGETS=cpu``) versus the same project with
             the hook line removed, and the per-model compile times the build printed.
2. load:     ``import example_models.compiled`` (loads all four models) versus ``torch.jit.load`` of
             the four artifact files, fresh interpreters, torch already imported.
3. per call: the loader's CompiledModel versus the ScriptModule it wraps (under no_grad and under
             inference_mode) versus eager PyTorch, interleaved, one torch thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import harness as h
import tomllib

HOOK_LINE = "[tool.hatch.build.hooks.neuron]"
PACKAGE = "example_models"
MODELS = ("scale_add", "conv", "classifier", "encoder")
VARIANTS = ("loader", "raw_no_grad", "raw_inference", "eager")
#: (quick, full)
SETTINGS = dict(build_repeats=(1, 3), load_repeats=(3, 9), call_rounds=(7, 31), call_batch_s=(0.01, 0.04))


def bench_build(work: Path, repeats: int) -> tuple[dict[str, Any], Path]:
    projects = {kind: h.copy_example(work / kind / "example_project") for kind in ("hook", "plain")}
    pyproject = projects["plain"] / "pyproject.toml"
    lines = pyproject.read_text().splitlines(keepends=True)
    pyproject.write_text("".join(line for line in lines if line.strip() != HOOK_LINE))
    wheels = {}

    def build(kind: str) -> tuple[float, dict[str, dict[str, str]]]:
        env = h.clean_env(HATCH_NEURON_TARGETS="cpu")
        seconds, log, wheels[kind] = h.pip_wheel(projects[kind], work / f"wheels-{kind}", env, PACKAGE)
        found = {m["model"]: m.groupdict() for m in map(h.COMPILE_LINE.search, log.splitlines()) if m}
        assert set(found) == (set(MODELS) if kind == "hook" else set()), (kind, sorted(found), log[-3000:])
        return seconds, found

    got = h.alternate(["hook", "plain"], repeats, build)
    result = {f"{kind}_s": h.median(s for s, _ in got[kind]) for kind in got}
    models = {n: dict(got["hook"][-1][1][n]) for n in MODELS}
    for name, model in models.items():
        model["seconds"] = h.median(float(c[name]["seconds"]) for _, c in got["hook"])
    result.update(repeats=repeats, models=models, compile_sum_s=sum(m["seconds"] for m in models.values()))
    result["wheel_bytes"] = {kind: wheel.stat().st_size for kind, wheel in wheels.items()}
    return result, wheels["hook"]


def child_load(payload: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    import torch

    torch_import_s, start = time.perf_counter() - start, time.perf_counter()
    if payload["kind"] == "loader":
        import example_models.compiled as compiled

        seconds = time.perf_counter() - start
        h.check_site(compiled, payload)
        assert all(getattr(compiled, name).loaded for name in MODELS)
    else:
        for f in sorted((Path(payload["site"]) / PACKAGE / "_hatch_neuron").glob("*.pt")):
            torch.jit.load(str(f), map_location="cpu")
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "torch_import_s": torch_import_s}


def child_calls(payload: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import example_models.compiled as compiled
    from example_models import nets

    h.check_site(compiled, payload)
    generator = torch.Generator().manual_seed(0)
    results, modes, profile = {}, set(), []
    for name in MODELS:
        loader, eager_model = getattr(compiled, name), getattr(nets, f"make_{name}")()
        inputs = h.make_inputs(payload["specs"][name], generator)
        module = loader.module_for(*inputs)  # the artifact of the bucket these inputs run on

        def call(fn: Any, mode: Any = None, _inputs: tuple[Any, ...] = inputs) -> Any:
            def timed() -> Any:
                if mode is None:
                    return fn(*_inputs)
                with mode():
                    return fn(*_inputs)

            return timed

        funcs = dict(loader=call(loader), raw_no_grad=call(module, torch.no_grad))
        funcs.update(raw_inference=call(module, torch.inference_mode))
        funcs.update(eager=call(eager_model, torch.inference_mode))
        got = funcs["loader"]()  # the loader's grad mode shows in its outputs (inference tensors or not)
        tensors = got.values() if isinstance(got, dict) else [got]
        modes.update("inference_mode" if t.is_inference() else "no_grad" for t in tensors)
        assert h.close(got, funcs["eager"]()) is None, name
        measured = h.interleave(funcs, payload["rounds"], payload["batch_s"])
        results[name] = {"shapes": [list(t.shape) for t in inputs], **measured}
        if payload["profile"]:
            profile += h.profile_lines(funcs["loader"], 2000, f"the loader's {name}")
    assert len(modes) == 1, modes
    return dict(loader_mode=modes.pop(), threads=torch.get_num_threads(), models=results, profile=profile)


def report(build: dict[str, Any], load: dict[str, Any], calls: dict[str, Any]) -> None:
    print(f"\n== 1. build: pip wheel --no-build-isolation --no-deps (median of {build['repeats']}) ==")
    size = build["wheel_bytes"]
    rows = [
        ["with hook (HATCH_NEURON_TARGETS=cpu)", f"{build['hook_s']:.2f}", size["hook"]],
        ["hook line removed", f"{build['plain_s']:.2f}", size["plain"]],
    ]
    print(h.table(["build", "seconds", "wheel bytes"], rows))
    extra = build["hook_s"] - build["plain_s"]
    print(f"ratio hook/plain: {build['hook_s'] / build['plain_s']:.1f}x   extra: {extra:.2f} s")
    rows = [
        [n, m["target"], f"{m['seconds']:.1f}", m["size"], m["check"]] for n, m in build["models"].items()
    ]
    print(h.table(["model", "target", "compile s (printed)", "artifact", "check"], rows))
    print(
        f"printed compile times sum to {build['compile_sum_s']:.1f} s; the other "
        f"{extra - build['compile_sum_s']:.1f} s are outside them (the workers' start; import torch "
        f"alone takes {load['torch_import_s']:.2f} s)"
    )

    print(
        f"\n== 2. load: fresh interpreter per sample, torch imported first (median of {load['repeats']}) =="
    )
    loader_ms, jit_ms = load["loader_s"] * 1e3, load["jit_s"] * 1e3
    rows = [["import example_models.compiled (4 models)", f"{loader_ms:.1f}"]]
    print(h.table(["what", "ms"], [*rows, ["torch.jit.load of the same artifact files", f"{jit_ms:.1f}"]]))
    print(
        f"ratio loader/jit.load: {loader_ms / jit_ms:.2f}x   extra: {loader_ms - jit_ms:.1f} ms   "
        f"(import torch: {load['torch_import_s'] * 1e3:.0f} ms, not included)"
    )

    print(f"\n== 3. per call: median us/call, interleaved, torch.set_num_threads({calls['threads']}) ==")
    raw = "raw_inference" if calls["loader_mode"] == "inference_mode" else "raw_no_grad"
    rows = []
    for name, m in calls["models"].items():
        us = m["median_us"]
        rows.append([name, " ".join(map(str, m["shapes"])), *(f"{us[v]:.1f}" for v in VARIANTS)])
        rows[-1] += [f"{us['loader'] / us[raw]:.2f}", f"{us['loader'] - us[raw]:+.1f}"]
        rows[-1] += [f"{us['loader'] / us['eager']:.2f}", f"{us['raw_no_grad'] / us['raw_inference']:.2f}"]
    headers = ["model", "inputs", "loader", "raw no_grad", "raw inf_mode", "eager", "loader/raw"]
    print(h.table([*headers, "overhead us", "loader/eager", "no_grad/inf_mode"], rows))
    print(f"the loader runs the module under {calls['loader_mode']}: loader/raw and overhead use that raw")
    print("".join(f"{line}\n" for line in calls["profile"]), end="")


MODES = {"load": child_load, "calls": child_calls}


@h.bench("core", h.CPU, SETTINGS, "fewer repeats (under a minute)", MODES, profile=h.PROFILE)
def main(args: argparse.Namespace, meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    settings = meta["settings"]
    build, wheel = bench_build(work, settings["build_repeats"])
    site = h.install(wheel, work / "site")

    def load(kind: str) -> dict[str, float]:
        return h.child(__file__, "load", {"site": str(site), "kind": kind}, site, work)

    samples = h.alternate(["loader", "jit"], settings["load_repeats"], load)
    loads = {f"{k}_s": h.median(s["seconds"] for s in samples[k]) for k in samples}
    torch_s = h.median(s["torch_import_s"] for s in samples["loader"])
    loads.update(repeats=settings["load_repeats"], torch_import_s=torch_s, samples=samples)
    config = tomllib.loads((h.EXAMPLE / "pyproject.toml").read_text())["tool"]["neuron"]["models"]
    payload = {"site": str(site), "specs": {name: config[name]["inputs"] for name in MODELS}}
    payload.update(rounds=settings["call_rounds"], batch_s=settings["call_batch_s"], profile=args.profile)
    calls = h.child(__file__, "calls", payload, site, work)
    report(build, loads, calls)
    results.update(build=build, load=loads, calls=calls)


if __name__ == "__main__":
    main()
