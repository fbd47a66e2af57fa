"""Target ``xla``: lower the model with torch-xla, the path ``torch_neuronx.trace`` takes to neuronx-cc.

Two files per artifact:

- ``<stem>.hlo.pb``: the HloModule proto of the model run on the XLA device (the weights are parameters),
  which is what ``torch_neuronx.trace`` hands to ``neuronx-cc compile --framework XLA``. Users can compile
  it themselves; the runtime does not read it.
- ``<stem>.stablehlo.zip``: the model exported with ``torch.export`` and converted by
  ``torch_xla.stablehlo`` (StableHLO bytecode, weights, metadata; the folder that
  ``StableHLOGraphModule.save`` writes, zipped deterministically). The runtime runs it through torch-xla
  on whatever PJRT device is configured (``PJRT_DEVICE=CPU`` here).

torch-xla 2.9.0 works only with torch 2.9.0, hence the optional extra ``hatch-neuron[xla]``.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

import torch

from ..targets import REGISTRY
from .base import Compiled, CompileTarget, TargetUnavailable
from .options import NoOptions
from .reproducible import zip_folder

INSTALL_HINT = (
    "target 'xla' needs torch-xla on the build host: pip install 'hatch-neuron[xla]' (torch-xla 2.9.0 "
    "works only with torch 2.9.0, so use a separate environment for it)"
)


def import_torch_xla():
    """``torch_xla``, or :class:`TargetUnavailable` saying why it cannot be used here."""
    if importlib.util.find_spec("torch_xla") is None:
        raise TargetUnavailable(INSTALL_HINT)
    try:
        return importlib.import_module("torch_xla")
    except (ImportError, OSError) as exc:  # e.g. an undefined symbol: built for another torch
        raise TargetUnavailable(
            f"{INSTALL_HINT}; importing torch_xla {importlib.metadata.version('torch-xla')} with torch "
            f"{torch.__version__} failed: {exc}"
        ) from None


class XlaTarget(CompileTarget):
    info = REGISTRY["xla"]
    requires_module = "torch_xla"
    install_hint = INSTALL_HINT

    def compile(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        workdir: Path,
        options: NoOptions,
    ) -> Compiled:
        torch_xla = import_torch_xla()
        from torch_xla.stablehlo import exported_program_to_stablehlo

        exported = torch.export.export(module, example_inputs, strict=False)
        folder = workdir / "stablehlo"
        shutil.rmtree(folder, ignore_errors=True)
        exported_program_to_stablehlo(exported).save(str(folder))

        device = torch_xla.device()
        on_device = copy.deepcopy(module).to(device)
        outputs = on_device(*(t.to(device) for t in example_inputs))
        hlo = workdir / "model.hlo.pb"
        hlo.write_bytes(torch_xla._XLAC._get_xla_tensors_hlo_proto(list(outputs)))
        return Compiled(folder, {"device": "xla"}, companions={".hlo.pb": hlo})

    def save(self, compiled: Compiled, path: Path) -> None:
        zip_folder(compiled.module, path)

    def toolchain(self) -> dict[str, str | None]:
        return {"torch-xla": importlib.metadata.version("torch-xla")}
