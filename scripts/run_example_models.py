"""Import the installed example package, run each compiled model and compare it with eager PyTorch."""

import statistics
import time

import torch
from example_models import nets
from example_models.compiled import classifier, conv, encoder, scale_add

import hatch_neuron.runtime

torch.manual_seed(0)
cases = {
    "scale_add": (scale_add, nets.make_scale_add(), (torch.rand(3), torch.rand(3))),
    "conv": (conv, nets.make_conv(), (torch.rand(1, 1, 3, 3),)),
    "classifier": (classifier, nets.make_classifier(), (torch.rand(1, 3, 32, 32),)),
    # dynamic batching: 13 images run as a chunk of 8 and a chunk of 5 padded to the bucket of 8
    "classifier x13": (classifier, nets.make_classifier(), (torch.rand(13, 3, 32, 32),)),
    "encoder": (
        encoder,
        nets.make_encoder(),
        (torch.randint(0, 1000, (1, 16)), torch.cat([torch.ones(1, 12), torch.zeros(1, 4)], 1).long()),
    ),
    # sequence buckets: 11 tokens run on the length-16 artifact, padded with ids 0 and mask 0
    "encoder len 11": (
        encoder,
        nets.make_encoder(),
        (torch.randint(0, 1000, (1, 11)), torch.ones(1, 11).long()),
    ),
}
print(f"target picked: {hatch_neuron.runtime.selection('example_models')}")
print(
    "Timings are steady state (median of 50 calls after 5 more). 'first' is each one's first call in this\n"
    "process: the compiled model's after the import, which loaded it and ran its warm-up calls\n"
    "(tool.neuron.warmup), then the eager model's. A first call of a model of a few microseconds costs\n"
    "about 0.1 ms more than later ones for eager PyTorch too: the CPU's caches are cold for that code."
)
print(
    f"{'model':<16}{'max abs diff vs eager':>22}{'first us':>10}{'compiled us':>13}"
    f"{'eager first us':>16}{'eager us':>10}"
)
failed = []


def steady_us(fn, inputs) -> float:
    with torch.no_grad():
        for _ in range(5):
            fn(*inputs)
        calls = []
        for _ in range(50):
            start = time.perf_counter()
            fn(*inputs)
            calls.append(time.perf_counter() - start)
    return statistics.median(calls) * 1e6


for name, (compiled, eager, inputs) in cases.items():
    with torch.no_grad():
        start = time.perf_counter()
        got = compiled(*inputs)
        first = (time.perf_counter() - start) * 1e6
        start = time.perf_counter()
        want = eager(*inputs)
        eager_first = (time.perf_counter() - start) * 1e6
    got, want = (got, want) if isinstance(got, dict) else ({"out": got}, {"out": want})
    diff = max((got[k] - want[k]).abs().max().item() for k in want)
    ours, theirs = steady_us(compiled, inputs), steady_us(eager, inputs)
    print(f"{name:<16}{diff:>22.3g}{first:>10.1f}{ours:>13.1f}{eager_first:>16.1f}{theirs:>10.1f}")
    if diff > 1e-4:
        failed.append(name)
if failed:
    raise SystemExit(f"compiled output differs from eager for: {', '.join(failed)}")
print("all compiled models match eager PyTorch")
