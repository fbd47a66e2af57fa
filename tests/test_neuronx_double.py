"""The TEST DOUBLE of torch_neuronx (tests/doubles) pinned to its sources, one behaviour per test.

Sources: [code] the public copy of torch-neuronx 1.13.1.1.12.0's Python code (GitHub
``gschaves/torch-neuronx``), [docs] the Neuron SDK's torch-neuronx API pages (trace, replace weights, core
placement, DataParallel, analyze, async/lazy load). Nothing here is a Neuron result: the double runs a CPU
trace.
"""

from __future__ import annotations

import importlib
import io
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import DOUBLES, clean_env, run_json

from hatch_neuron.runtime.targets import parse_visible_cores

_IMPORTED: dict[str, ModuleType] = {}


@pytest.fixture
def tnx(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The double imported in-process, once (it registers an operator namespace), and out of
    ``sys.modules`` between tests (the runtime asks whether torch_neuronx is importable)."""
    monkeypatch.syspath_prepend(str(DOUBLES))
    for name in ("TORCH_NEURONX_DOUBLE_CORES", "NEURON_RT_VISIBLE_CORES", "TORCH_NEURONX_DOUBLE_LOG"):
        monkeypatch.delenv(name, raising=False)
    sys.modules.update(_IMPORTED)
    yield importlib.import_module("torch_neuronx")
    for name in [n for n in sys.modules if n == "torch_neuronx" or n.startswith("torch_neuronx.")]:
        _IMPORTED[name] = sys.modules.pop(name)


class Net(torch.nn.Module):
    """The seed's example module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + 1


def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def round_trip(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def test_extra_positional_arguments_warn_and_map(tnx: ModuleType, tmp_path: Path) -> None:
    """[code] xla_impl/trace.py trace(): ``*_`` maps to (states, aliases, workdir, args, options) with a
    DeprecationWarning; more than five is a RuntimeError."""
    with pytest.warns(DeprecationWarning, match="positional arguments after `func` and `example_inputs`"):
        tnx.trace(net(), torch.rand(1, 1, 3, 3), None, None, str(tmp_path), ["--optlevel", "1"])
    assert "--optlevel 1" in (tmp_path / "command.txt").read_text()
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(RuntimeError, match="Received 8 positional arguments"),
    ):
        tnx.trace(net(), torch.rand(1, 1, 3, 3), *([None] * 6))


def test_unknown_keywords_only_warn(tnx: ModuleType) -> None:
    """[code] trace(): ``options``/``states`` are deprecated, any other unknown keyword a UserWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tnx.trace(net(), torch.rand(1, 1, 3, 3), options=object(), bogus=1)
    messages = {(w.category, str(w.message)) for w in caught}
    assert (DeprecationWarning, "Argument `options` is deprecated") in messages
    assert (UserWarning, "Unexpected keyword arguments: ['bogus']") in messages


def test_documented_keywords_accepted(tnx: ModuleType) -> None:
    """[docs] trace(func, example_inputs, *_, input_output_aliases={}, compiler_workdir=None,
    compiler_args=None, partitioner_config=None, inline_weights_to_neff=True)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tnx.trace(
            net(),
            torch.rand(1, 1, 3, 3),
            input_output_aliases={},
            compiler_workdir=None,
            compiler_args="--optlevel 2",
            partitioner_config=None,
            inline_weights_to_neff=True,
        )


def test_workdir_path_and_files(tnx: ModuleType, tmp_path: Path) -> None:
    """[code] trace()/hlo_compile(): compiler_workdir a str or Path; it gets model/graph.hlo,
    model/metadata.json, graph.neff and command.txt (basenames, --target trn1 before the user's args; a str
    of args is split like a shell line)."""
    tnx.trace(net(), torch.rand(1, 1, 3, 3), compiler_workdir=tmp_path, compiler_args="--target inf2 -O1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["command.txt", "graph.neff", "model"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["graph.hlo", "metadata.json", "weights"]
    assert (tmp_path / "command.txt").read_text() == (
        "neuronx-cc compile model --framework XLA --target trn1 --output graph.neff --target inf2 -O1"
    )
    assert "TEST DOUBLE: not a NEFF" in (tmp_path / "graph.neff").read_text()


def test_dict_outputs_kept(tnx: ModuleType) -> None:
    """[code] create_neuron_model(): the result is traced with strict=False, so structured outputs stay."""

    class Heads(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"double": x * 2, "plus": x + 1}

    out = round_trip(tnx.trace(Heads(), torch.rand(2, 3)))(torch.ones(2, 3))
    assert set(out) == {"double", "plus"} and torch.equal(out["double"], torch.full((2, 3), 2.0))


def test_weights_inlined_by_default(tnx: ModuleType) -> None:
    """[docs] inline_weights_to_neff (default True) inlines the weights into the NEFF: nothing in
    state_dict(); False keeps them separate, and replace_weights swaps them in place (returns None)."""
    x = torch.rand(1, 1, 3, 3)
    assert tnx.trace(net(), x).state_dict() == {}
    separated = tnx.trace(net(), x, inline_weights_to_neff=False)
    assert sorted(k.rsplit(".", 1)[-1] for k in separated.state_dict()) == ["bias", "weight"]
    other = Net().eval()
    assert tnx.replace_weights(separated, other) is None
    assert torch.allclose(round_trip(separated)(x), other(x))


def test_replace_weights_warns_without_separated_weights(tnx: ModuleType) -> None:
    """[docs] replace_weights "will emit a warning if the supplied Neuron model does not contain any
    separated weights"."""
    with pytest.warns(UserWarning, match="does not contain any separated weights"):
        tnx.replace_weights(tnx.trace(net(), torch.rand(1, 1, 3, 3)), net().state_dict())


def test_seed_dynamic_batch_example_in_place(tnx: ModuleType) -> None:
    """[docs] dynamic_batch: the seed's own example, modified in place (the returned result is a reference
    to the input); [code] xla_impl/torchscript.py dynamic_batch(trace, enable_dynamic_batch=True)."""
    model, inputs = net(), torch.rand(1, 1, 3, 3)
    neuron_net = tnx.trace(model, inputs)
    assert tnx.dynamic_batch(neuron_net) is neuron_net
    batch_8 = torch.rand(8, 1, 3, 3)
    assert torch.allclose(neuron_net(batch_8), model(batch_8), atol=1e-6)
    loaded = round_trip(neuron_net)  # the setting is saved with the model
    assert loaded(torch.rand(5, 1, 3, 3)).shape == (5, 1, 1, 1)
    tnx.dynamic_batch(loaded, False)
    with pytest.raises(RuntimeError, match=r"compiled for \[1, 1, 3, 3\] \(dynamic batching is off\)"):
        loaded(batch_8)


def test_dynamic_batch_refuses_a_changed_non_batch_dimension(tnx: ModuleType) -> None:
    """[docs] inputs that differ in a non-0 dimension, or in dim 0 from each other, raise ValueError. From an
    operator called in TorchScript that reaches Python as a RuntimeError naming it, as a C++ op's
    c10::ValueError does (tests/doubles/torch_neuronx/_graph.py)."""
    add = tnx.dynamic_batch(tnx.trace(lambda x, y: x + y, (torch.rand(2, 3, 5), torch.rand(2, 3, 5))))
    assert add(torch.rand(3, 3, 5), torch.rand(3, 3, 5)).shape == (3, 3, 5)
    with pytest.raises(RuntimeError, match="ValueError: dynamic batching: input 0 has shape"):
        add(torch.rand(2, 7, 5), torch.rand(2, 7, 5))
    with pytest.raises(RuntimeError, match="ValueError: dynamic batching: the inputs' dim-0 sizes differ"):
        add(torch.rand(3, 3, 5), torch.rand(4, 3, 5))
    with pytest.raises(RuntimeError, match="ValueError: dynamic batching: input 0 has shape \\[0, 3, 5\\]"):
        add(torch.rand(0, 3, 5), torch.rand(0, 3, 5))


def test_async_and_lazy_load_flags(tnx: ModuleType) -> None:
    """[docs] async_load / lazy_load, called after trace and before torch.jit.save, return None and are
    saved with the model ([code] set_async_load / set_lazy_load on each binding)."""
    traced = tnx.trace(net(), torch.rand(1, 1, 3, 3))
    assert tnx.async_load(traced) is None and tnx.lazy_load(traced) is None
    (graph,) = [m for m in round_trip(traced).modules() if m.original_name == "NeuronGraph"]
    assert graph.async_load and graph.lazy_load


def test_placement_validation(tnx: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """[code] experimental/placement.py _validate_nc_count: 0 and values below -1 are ValueError; a count
    above the visible cores too; without a device the count cannot be read (RuntimeError). The names are
    at the top level too (the docs' names since SDK 2.25)."""
    placement = tnx.experimental
    for bad in (0, -2):
        with pytest.raises(ValueError, match=f"nc_count={bad}"), placement.neuron_cores_context(0, bad):
            pass
    with (
        pytest.raises(RuntimeError, match="Neuron runtime cannot be initialized"),
        placement.neuron_cores_context(0, 1),
    ):
        pass
    with placement.neuron_cores_context(-1, -1):  # -1: no core count needed
        pass
    monkeypatch.setenv("TORCH_NEURONX_DOUBLE_CORES", "4")
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "1-2")
    with pytest.raises(ValueError, match=r"nc_count=3\. NeuronCores available: 2"):
        tnx.neuron_cores_context(0, 3).__enter__()
    traced = tnx.trace(net(), torch.rand(1, 1, 3, 3))
    tnx.set_neuron_cores(traced, 1, 2)
    (graph,) = [m for m in traced.modules() if m.original_name == "NeuronGraph"]
    assert (graph.start_nc, graph.nc_count) == (1, 2)


def test_data_parallel(tnx: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """[code] xla_impl/data_parallel.py: all visible cores by default (RuntimeError without a device), ids
    as int or 'nc:#', dynamic batching turned on for dim 0, the batch split over the cores."""
    model = net()
    traced = tnx.trace(model, torch.rand(1, 1, 3, 3))
    with pytest.raises(RuntimeError, match="Neuron runtime cannot be initialized"):
        tnx.DataParallel(traced)
    monkeypatch.setenv("TORCH_NEURONX_DOUBLE_CORES", "2")
    parallel = tnx.DataParallel(traced, device_ids=["nc:0", 1])
    assert parallel.device_ids == [0, 1] and parallel.num_workers == 2
    batch = torch.rand(5, 1, 3, 3)
    assert torch.allclose(parallel(batch), model(batch), atol=1e-6)
    with pytest.warns(UserWarning, match="not being fully utilized"):
        parallel(torch.rand(1, 1, 3, 3))  # one chunk for two cores
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "0")  # placing on 2 cores now fails
    with pytest.warns(UserWarning, match="Automatic dynamic batching failed"):
        failed = tnx.DataParallel(traced, device_ids=[0, 1])
    with pytest.raises(RuntimeError, match="Automatic dynamic batching must be disabled"):
        failed(batch)
    with pytest.raises(ValueError, match="Expected `nc:#` or an integer, but got: core0"):
        tnx.DataParallel(traced, device_ids=["core0"])


def test_analyze_report_structure(tnx: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """[code] xla_impl/analyze.py analyze(model, ex_input, ...) -> the documented report keys. The double
    cannot know neuronx-cc's support: the unsupported kinds come from TORCH_NEURONX_DOUBLE_UNSUPPORTED."""
    monkeypatch.setenv("TORCH_NEURONX_DOUBLE_UNSUPPORTED", "aten::add")
    report = tnx.analyze(net(), torch.rand(1, 1, 3, 3))
    assert set(report) == {
        "torch_neuronx_version",
        "neuronx_cc_version",
        "support_percentage",
        "supported_operators",
        "unsupported_operators",
    }
    assert report["supported_operators"] == {"aten::_convolution": 1}
    assert [op["kind"] for op in report["unsupported_operators"]] == ["aten::add"]
    assert report["support_percentage"] == "50.00%"


def test_move_trace_to_device(tnx: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """[code] move_trace_to_device(trace, device_id) initialises the runtime (no device: RuntimeError)."""
    traced = tnx.trace(net(), torch.rand(1, 1, 3, 3), inline_weights_to_neff=False)
    with pytest.raises(RuntimeError, match="Neuron runtime cannot be initialized"):
        tnx.move_trace_to_device(traced, 0)
    monkeypatch.setenv("TORCH_NEURONX_DOUBLE_CORES", "2")
    assert tnx.move_trace_to_device(traced, 1) is None


@pytest.mark.parametrize(
    ("text", "cores"), [("2", [2]), ("0-3", [0, 1, 2, 3]), ("3-5,6", [3, 4, 5, 6]), (" 1 , 2 ", [1, 2])]
)
def test_visible_cores_syntax(text: str, cores: list[int]) -> None:
    """[docs] Neuron runtime developer guide: NEURON_RT_VISIBLE_CORES=<m,n,p-q>, a contiguous run. This is
    hatch-neuron's own parser (hatch_neuron.runtime.targets), checked against the documented forms."""
    assert parse_visible_cores(text) == cores


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3,5,6", "not contiguous"),
        ("a-b", "'a-b' is not"),
        ("1,", "'' is"),
        ("3-1", "'3-1' is"),
        ("0,3-1", "'3-1' is"),
        ("\u00b2", "'\u00b2' is"),
    ],
)
def test_visible_cores_junk(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        parse_visible_cores(text)
    assert f"NEURON_RT_VISIBLE_CORES={text!r}" in str(raised.value) and "a range (0-3)" in str(raised.value)


def test_release_1_13_paths(tmp_path: Path) -> None:
    """[code] 1.13.1.1.12.0's trace has no inline_weights_to_neff (only an 'Unexpected keyword' warning)
    and its placement API is experimental's only: hatch-neuron refuses inline-weights = false there rather
    than get inlined weights, and the loader takes experimental's neuron_cores_context."""
    code = """
        import json, pathlib, warnings, torch, torch_neuronx
        from hatch_neuron.compile.base import TargetUnavailable
        from hatch_neuron.compile.neuron import NeuronTarget
        from hatch_neuron.compile.options import NeuronOptions
        from hatch_neuron.runtime.neuron import _cores_context
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch_neuronx.trace(torch.nn.Linear(2, 2).eval(), torch.rand(1, 2), inline_weights_to_neff=False)
        options = NeuronOptions([], "inf2", False, {"inline-weights": False})
        try:
            NeuronTarget().compile(torch.nn.Linear(2, 2), (torch.rand(1, 2),), pathlib.Path("w"), options)
        except TargetUnavailable as exc:
            refused = str(exc)
        print(json.dumps({
            "version": torch_neuronx.__version__,
            "warned": [str(w.message) for w in caught if w.category is UserWarning],
            "refused": refused,
            "context": _cores_context(torch_neuronx).__module__,
        }))
    """
    report = run_json(code, tmp_path, DOUBLES, env=clean_env(TORCH_NEURONX_DOUBLE_RELEASE="1.13.1.1.12.0"))
    assert report["version"] == "1.13.1.1.12.0"
    assert "Unexpected keyword arguments: ['inline_weights_to_neff']" in report["warned"]
    assert "needs torch_neuronx.trace's inline_weights_to_neff" in report["refused"]
    assert report["context"] == "torch_neuronx.experimental"
