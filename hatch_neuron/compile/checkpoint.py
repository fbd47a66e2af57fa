"""Models declared by a Hugging Face checkpoint (``transformers = "..."``), in three parts:

- :func:`resolve_checkpoints` (build process, no transformers): finds each checkpoint's folder (a project
  folder, or a hub id in the local Hugging Face cache), picks the task, and gets the inputs from
  :func:`describe`, run in a child process (transformers is imported only there and in the model's
  workers) and kept in the compile cache by the checkpoint's small files;
- :func:`describe` (child process): the inputs' names, shapes, dtypes and value ranges from the tokenizer
  or image processor and the config;
- :func:`load_checkpoint` (the model's workers): the factory, returning the task's model in eval mode
  behind keyword inputs and a dict of the task's named outputs.

Run as ``python -m hatch_neuron.compile.checkpoint REQUEST-JSON``: prints :func:`describe`'s result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..cache.store import LAYOUT
from ..config import ConfigError, InputSpec, ModelSettings, NeuronSettings
from ..config.parse import convert
from ..plan import Checkpoint

#: The transformers auto class of each task.
AUTO_CLASSES = {
    "feature-extraction": "AutoModel",
    "fill-mask": "AutoModelForMaskedLM",
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "image-classification": "AutoModelForImageClassification",
}
#: What checkpoint models' workers import, for the preloaded workers' server to import first.
CHECKPOINT_IMPORTS = ["transformers", "transformers:AutoConfig", *(f"transformers:{c}" for c in AUTO_CLASSES)]
#: The task's named outputs, returned as a dict (those the model returns as None are left out).
TASK_OUTPUTS = {
    "feature-extraction": ("last_hidden_state", "pooler_output"),
    "question-answering": ("start_logits", "end_logits"),
}
#: ``task = "auto"``: the task of an ``architectures`` class name, by its suffix.
ARCHITECTURE_TASKS = {
    "ForMaskedLM": "fill-mask",
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
    "ForImageClassification": "image-classification",
}
#: Text inputs' default length: what sentence encoders are usually run at.
DEFAULT_SEQUENCE_LENGTH = 128
#: The checkpoint files :func:`describe` reads (the description is cached by their bytes).
DESCRIBED_FILES = (".json", ".txt", ".model")
#: Raised when the description's meaning changes, so that cached ones are not used.
DESCRIPTION_FORMAT = 1
EXTRA = "pip install 'hatch-neuron[transformers]'"


class CheckpointError(Exception):
    """A checkpoint that cannot be described or loaded (reported as the model's error)."""


# -- build process -------------------------------------------------------------------------------------


def _offline() -> bool:
    """Hugging Face's ``HF_HUB_OFFLINE``, defaulting to offline: a build downloads only where it is 0."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "off")


def checkpoint_folder(source: str, root: Path, path: str) -> Path:
    """The folder of ``source``: a folder of the project, or a hub id's snapshot in the local cache."""
    local = root / source
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ConfigError(path, f"{local} has no config.json; it is not a Hugging Face checkpoint folder")
        return local.resolve()
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ConfigError(path, f"no folder {local}", "give a checkpoint folder of the project or a hub id")
    try:
        import huggingface_hub
    except ImportError:
        raise ConfigError(
            path,
            f"{source!r} is not a folder of the project, and huggingface_hub is not installed to "
            "look it up as a hub id",
            EXTRA,
        ) from None
    offline = _offline()
    try:
        return Path(huggingface_hub.snapshot_download(source, local_files_only=offline))
    except Exception as exc:  # not cached (offline), unknown repository, no network
        how = (
            "hatch-neuron builds offline (HF_HUB_OFFLINE defaults to 1 here): download it first "
            f"(`hf download {source}`), or set HF_HUB_OFFLINE=0 to let the build download it"
            if offline
            else "the download failed"
        )
        raise ConfigError(
            path,
            f"{source!r} is not a folder of the project nor in the local Hugging Face cache ({how})",
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        ) from None


def checkpoint_task(folder: Path, task: str) -> str:
    """``task``, or for ``auto`` the task of the checkpoint's first architecture (feature-extraction for a
    bare model)."""
    if task != "auto":
        return task
    config = json.loads((folder / "config.json").read_text())
    for architecture in config.get("architectures") or ():
        for suffix, found in ARCHITECTURE_TASKS.items():
            if architecture.endswith(suffix):
                return found
    return "feature-extraction"


def _description_key(folder: Path, request: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode())
    for file in sorted(folder.iterdir()):
        if file.suffix in DESCRIBED_FILES and file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _transformers_version() -> str | None:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_in_child(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """:func:`describe` in a child process (the build process never imports transformers)."""
    from .runner import HATCH_NEURON_HOME

    bootstrap = (
        "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
        "runpy.run_module('hatch_neuron.compile.checkpoint', run_name='__main__', alter_sys=True)"
    )
    command = [sys.executable, "-c", bootstrap, str(HATCH_NEURON_HOME), json.dumps(request)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise CheckpointError(tail or f"exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def resolve_checkpoints(
    settings: NeuronSettings, root: Path, cache_dir: Path | None
) -> tuple[NeuronSettings, dict[str, Checkpoint]]:
    """The settings with every checkpoint model's inputs filled in (unless it declares them), and each
    such model's :class:`~hatch_neuron.plan.Checkpoint`."""
    models, checkpoints = dict(settings.models), {}
    for name, model in settings.models.items():
        if model.transformers is None:
            continue
        path = f"tool.neuron.models.{name}"
        folder = checkpoint_folder(model.transformers, root, f"{path}.transformers")
        task = checkpoint_task(folder, model.task)
        if model.inputs is None:
            described = _described(name, model, folder, task, cache_dir, settings.timeout)
            specs = convert(list[InputSpec], described["inputs"], f"{path}.inputs")
            model = dataclasses.replace(model, inputs=specs)
            model.validate(path)  # the buckets and the batch now have inputs to check against
            models[name] = model
        names = tuple(spec.name or f"input{i}" for i, spec in enumerate(model.inputs))
        checkpoints[name] = Checkpoint(str(folder), task, names)
    return dataclasses.replace(settings, models=models), checkpoints


def _described(
    name: str, model: ModelSettings, folder: Path, task: str, cache_dir: Path | None, timeout: float
) -> dict[str, Any]:
    request = {
        "folder": str(folder),
        "task": task,
        "batch_size": model.batch_size,
        "sequence_length": model.sequence_length,
    }
    versions = {"hatch-neuron": __version__, "transformers": _transformers_version()}
    key = _description_key(folder, {**request, **versions, "format": DESCRIPTION_FORMAT})
    cached = cache_dir / LAYOUT / "checkpoints" / key[:2] / f"{key}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            return json.loads(cached.read_text())
        except ValueError:
            pass
    try:
        described = describe_in_child(request, timeout)
    except (CheckpointError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(
            f"tool.neuron.models.{name}.transformers",
            f"cannot read the inputs of checkpoint {model.transformers!r} ({folder}):\n{exc}",
            "or declare them with inputs = [...]",
        ) from None
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f"{cached.name}.partial-{os.getpid()}")
            partial.write_text(json.dumps(described))
            os.replace(partial, cached)
        except OSError:
            pass  # only a shortcut: the next build describes it again
    return described


# -- child process and workers (transformers) ----------------------------------------------------------


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise CheckpointError(f"a transformers checkpoint needs transformers: {EXTRA}") from None
    return transformers


def model_class(transformers: Any, config: Any, task: str) -> Any:
    auto = getattr(transformers, AUTO_CLASSES[task])
    try:
        return auto._model_mapping[type(config)]
    except KeyError:
        raise CheckpointError(
            f"task {task!r} does not fit this checkpoint: transformers' {auto.__name__} has no class for "
            f"model type {config.model_type!r}"
        ) from None


def _image_size(config: Any, processor: dict[str, Any]) -> list[int]:
    size = getattr(config, "image_size", None)
    if size is None:  # CNN configs (ResNet, ConvNeXt): the processor's crop or resize
        found = processor.get("crop_size") or processor.get("size") or {}
        size = [found["height"], found["width"]] if "height" in found else found.get("shortest_edge")
    if size is None:
        raise CheckpointError("no image_size in the config nor a size in the image processor")
    return list(size) if isinstance(size, list | tuple) else [size, size]


def describe(folder: str, task: str, batch_size: int, sequence_length: int | None) -> dict[str, Any]:
    """The inputs of the checkpoint at ``folder`` for ``task``: the tokenizer's (or image processor's)
    ``model_input_names`` that the model's ``forward`` takes, in that order, as input specs."""
    transformers = _transformers()
    config = transformers.AutoConfig.from_pretrained(folder)
    cls = model_class(transformers, config, task)
    takes = inspect.signature(cls.forward).parameters
    if "pixel_values" in takes and "input_ids" not in takes:
        # the image processor's saved settings, read as such: its class needs PIL and torchvision, which
        # a build has no use for
        saved = Path(folder, "preprocessor_config.json")
        processor = json.loads(saved.read_text()) if saved.is_file() else {}
        shape = [batch_size, getattr(config, "num_channels", 3), *_image_size(config, processor)]
        names = [n for n in processor.get("model_input_names", ["pixel_values"]) if n in takes]
        return {"inputs": [{"name": n, "shape": shape, "dtype": "float32"} for n in names]}
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    longest = getattr(config, "max_position_embeddings", None) or DEFAULT_SEQUENCE_LENGTH
    length = sequence_length or min(DEFAULT_SEQUENCE_LENGTH, longest)
    if length > longest:
        raise CheckpointError(f"sequence-length {length} is more than the model's {longest} positions")
    highs = {
        "input_ids": config.vocab_size,
        "token_type_ids": getattr(config, "type_vocab_size", None) or 2,
    }
    names = [n for n in tokenizer.model_input_names if n in takes]
    return {
        "inputs": [
            {"name": n, "shape": [batch_size, length], "dtype": "int64", "low": 0, "high": highs.get(n, 2)}
            for n in names
        ]
    }


def load_checkpoint(folder: str, task: str, inputs: list[str], options: dict[str, Any] | None = None) -> Any:
    """The factory of a checkpoint model: the task's transformers model from ``folder`` in eval mode,
    called with the inputs as keywords, returning a dict of the task's named outputs."""
    transformers = _transformers()
    config = transformers.AutoConfig.from_pretrained(folder)
    model = model_class(transformers, config, task).from_pretrained(folder, **(options or {})).eval()
    # the weights are read by native code the direct cache's file tracker does not see: open each file
    # of the checkpoint once from Python, so that a warm build checks their sha256 like the factory's
    for file in sorted(Path(folder).iterdir()):
        if file.is_file():
            open(file, "rb").close()
    return _named(model, tuple(inputs), TASK_OUTPUTS.get(task, ("logits",)))


def _named(model: Any, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Any:
    import torch  # here, not at the top: the build process imports this module without torch

    class CheckpointModel(torch.nn.Module):
        """Positional tensors -> the model called with them as keywords -> ``{output: tensor}``."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> dict[str, Any]:
            out = self.model(**dict(zip(inputs, tensors, strict=True)), return_dict=True)
            return {name: out[name] for name in outputs if out.get(name) is not None}

    return CheckpointModel().eval()


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    try:
        print(json.dumps(describe(**request)))
    except CheckpointError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
