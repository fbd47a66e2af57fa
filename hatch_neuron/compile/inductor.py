"""Target ``inductor``: ``torch.export`` + AOTInductor into a ``.pt2`` package of native CPU code.

The code is built for a portable instruction set, not the build host's (AOTInductor's default is
``-march=native``): ``-march=x86-64-v3`` and Inductor's AVX2 vector code (``ATEN_CPU_CAPABILITY=avx2``),
which every x86-64 server CPU of the last decade runs. The manifest records it, and the runtime refuses
to load the artifact on a CPU without it instead of crashing with SIGILL. Native code needs the exact
torch it was built with, so such wheels get a platform tag and an exact torch pin.

With ``inductor-device = "cuda"`` the graph is exported and compiled on the build host's GPU: the kernels
are for that GPU's compute capability, which the manifest records and the runtime requires.
"""

from __future__ import annotations

import copy
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..runtime.inductor import INDUCTOR_ISA, onednn_vector_isa
from ..targets import REGISTRY
from .base import CannotCompile, Compiled, CompileTarget, TargetUnavailable, user_frame
from .options import InductorOptions

MARCH = {"x86_64": "x86-64-v3"}
#: AOTInductor compiles with ``-g1`` line tables (for profilers) by default: without them the library is
#: about 4x smaller (1.48 MB -> 0.37 MB for a small MLP), and so are wheels and their compression time.
NO_LINE_TABLES = {"aot_inductor.enable_line_tables": False}
#: Convolution ops of an exported graph. A CPU graph with one compiles with ``freezing`` unless the project
#: sets it: batch norms fold into the convolutions and oneDNN runs them on constant weights (ResNet-18 at
#: batch 1, one thread: 69 -> 51 ms). Graphs without one keep Inductor's default (on the example
#: transformer encoder freezing gained nothing: 218 against 221 us at batch 1).
CONVOLUTIONS = frozenset(
    {"conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
)
#: How the two settings above are chosen when the project leaves them out (part of the cache key).
INFERENCE_DEFAULTS = "freezing on for convolutions; cpp.weight_prepack off when freezing"


def has_convolution(exported: torch.export.ExportedProgram) -> bool:
    """Whether the graph or one of its sub-graphs (an autocast or grad-mode region) runs a convolution."""
    graphs = [m.graph for m in exported.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]
    return any(getattr(node.target, "_opname", None) in CONVOLUTIONS for g in graphs for node in g.nodes)


def inference_configs(configs: dict[str, Any], convolutions: bool) -> dict[str, Any]:
    """The settings Inductor adds for inference to the project's ``configs`` (which always win).

    ``cpp.weight_prepack`` goes off under freezing: prepacked weights are laid out for the build host's
    oneDNN kernels (AVX-512 here), and a CPU that runs others reorders them on every call (ResNet-18
    under ``ONEDNN_MAX_CPU_ISA=AVX2``: 41 -> 544 ms a call); unpacked, every CPU pays a small reorder
    (51 ms here, 62 ms under AVX2)."""
    added: dict[str, Any] = {}
    if "freezing" not in configs and convolutions:
        added["freezing"] = True
    if {**configs, **added}.get("freezing") and "cpp.weight_prepack" not in configs:
        added["cpp.weight_prepack"] = False
    return added


def inductor_setting_names() -> set[str]:
    import torch._inductor.config as inductor_config

    return set(inductor_config.get_config_copy())


class InductorTarget(CompileTarget):
    info = REGISTRY["inductor"]
    #: The package's generated C++ and library name the Inductor cache folder and the package path.
    output_holds_workdir = True

    def preflight(self, options: InductorOptions) -> None:
        if options.device == "cuda" and not torch.cuda.is_available():
            raise TargetUnavailable(
                'inductor-device = "cuda" compiles on the build host\'s GPU, and this host has none that '
                f"torch {torch.__version__} can use (torch.cuda.is_available() is False)"
            )
        if platform.machine() not in MARCH:
            raise TargetUnavailable(
                f"target 'inductor' builds portable code for x86-64 only; this host is {platform.machine()}"
            )
        unknown = [name for name in options.configs if name not in inductor_setting_names()]
        if unknown:
            raise TargetUnavailable(
                f"inductor-configs: {unknown[0]!r} is not a setting of torch {torch.__version__}'s Inductor "
                "(torch._inductor.config)"
            )
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            raise TargetUnavailable("target 'inductor' needs a C++ compiler (g++, or $CXX) on the build host")

    def compile(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        workdir: Path,
        options: InductorOptions,
    ) -> Compiled:
        isa = INDUCTOR_ISA[platform.machine()]
        os.environ["ATEN_CPU_CAPABILITY"] = isa["capability"]  # the vector ISA Inductor generates for
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "inductor-cache")
        details = {"device": options.device, "isa": isa["name"], "march": MARCH[platform.machine()]}
        if options.device == "cuda":
            module = copy.deepcopy(module).cuda()
            example_inputs = tuple(t.cuda() for t in example_inputs)
            details["cuda_capability"] = "{}.{}".format(*torch.cuda.get_device_capability())
            details["gpu"] = torch.cuda.get_device_name()
        try:
            exported = torch.export.export(module, example_inputs, strict=False)
        except Exception as exc:
            where = user_frame(exc)
            first = (str(exc).strip().splitlines() or [""])[0]
            raise CannotCompile(
                f"target inductor: torch.export cannot export this model ({type(exc).__name__}: {first})"
                + (f", at {where}" if where else "")
                + ". AOTInductor needs an exported graph; the TorchScript targets (cpu, neuron) trace the "
                "model instead: leave inductor out for this model with its own targets = [...]"
            ) from exc
        configs = self.configs(options)
        if options.device == "cpu":
            added = inference_configs(configs, has_convolution(exported))
            configs.update(added)
            details.update({"inductor_configs_added": added} if added else {})
            if configs.get("freezing") and configs.get("cpp.weight_prepack", True):
                details["prepacked_for"] = onednn_vector_isa()  # the loader warns on other CPUs
        package = workdir / "model.pt2"
        torch._inductor.aoti_compile_and_package(
            exported, package_path=str(package), inductor_configs=configs
        )
        return Compiled(package, details)

    def toolchain(self) -> dict[str, str | None]:
        compiler = os.environ.get("CXX", "g++")
        try:
            version = subprocess.run(
                [compiler, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except OSError:
            version = None
        return {f"c++ ({compiler})": version or None}

    def key_options(self, options: InductorOptions) -> dict[str, Any]:
        key = {"device": options.device, **self.configs(options), "inference-defaults": INFERENCE_DEFAULTS}
        if options.configs.get("cpp.weight_prepack"):  # the weights' layout is this host's oneDNN kernels'
            key["prepacked-for"] = onednn_vector_isa()
        return key

    @staticmethod
    def configs(options: InductorOptions) -> dict[str, Any]:
        """The ``inductor_configs`` AOTInductor compiles with: no line tables unless the project's
        ``inductor-configs`` say otherwise, and always the portable instruction set."""
        return {**NO_LINE_TABLES, **options.configs, "cpp.march": MARCH.get(platform.machine())}

    def save(self, compiled: Compiled, path: Path) -> None:
        shutil.copyfile(compiled.module, path)
