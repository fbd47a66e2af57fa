"""Import the installed example package, run each compiled model and compare it with eager PyTorch."""

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
print(f"{'model':<16}{'max abs diff vs eager':>24}{'compiled us/call':>18}{'eager us/call':>15}")
failed = []
for name, (compiled, eager, inputs) in cases.items():
    with torch.no_grad():
        got, want = compiled(*inputs), eager(*inputs)
    got, want = (got, want) if isinstance(got, dict) else ({"out": got}, {"out": want})
    diff = max((got[k] - want[k]).abs().max().item() for k in want)
    timings = []
    for fn in (compiled, eager):
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(50):
                fn(*inputs)
        timings.append((time.perf_counter() - start) / 50 * 1e6)
    print(f"{name:<16}{diff:>24.3g}{timings[0]:>18.1f}{timings[1]:>15.1f}")
    if diff > 1e-4:
        failed.append(name)
if failed:
    raise SystemExit(f"compiled output differs from eager for: {', '.join(failed)}")
print("all compiled models match eager PyTorch")
