"""The ``[tool.neuron]`` settings model: typed dataclasses, one docstring per option.

Field names are the TOML keys with ``-`` written as ``_``. The string under each field is its
documentation: ``hatch_neuron.config.docs`` renders the README reference from it, so keep it to what a
user needs. Checks that involve one value live in ``field(metadata=...)``; checks that involve several
live in ``validate``. The converter in ``parse.py`` applies both and reports the key path.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from ..targets import TARGET_NAMES
from .errors import ConfigError
from .neuron_options import NeuronOptionSettings, conflict

#: dtype names accepted in ``inputs[].dtype`` (torch attribute names).
DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)
INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
#: Compile targets this release can build (the registry's names).
TARGETS = TARGET_NAMES
#: Devices the ``inductor`` target compiles for.
INDUCTOR_DEVICES = ("cpu", "cuda")
#: Values of ``neuron-target`` (neuronx-cc ``--target``).
NEURON_INSTANCE_TARGETS = ("inf2", "trn1", "trn1n", "trn2")
#: Tasks of models declared by a Hugging Face checkpoint (``transformers = "..."``); ``auto``: from the
#: checkpoint's ``architectures``.
TASKS = (
    "auto",
    "feature-extraction",
    "fill-mask",
    "text-classification",
    "token-classification",
    "question-answering",
    "image-classification",
)
#: The keys only a checkpoint model (``transformers = "..."``) takes.
CHECKPOINT_KEYS = ("task", "sequence-length", "batch-size")


@dataclass(frozen=True)
class EnvOverride:
    """A setting's environment variable (``field(metadata={"env": EnvOverride(...)})``): set, it replaces
    the project's value, converted and checked by the same code as the TOML value; its errors name the
    variable. The README's variable table is generated from these."""

    variable: str
    #: ``build``: applied when the settings are read; ``run``: read by the runtime where the package loads.
    when: str = "build"
    #: What a value must be, for the error when the variable's text is not one (numbers).
    expects: str = ""
    #: The word for one item of a comma-separated list (``target``: "unknown target 'gpu'").
    item: str = ""
    #: An empty value sets the setting to none (instead of being ignored).
    empty_unsets: bool = False
    #: It replaces the models' own values of the setting too.
    models_too: bool = False
    #: The README table's words for the value (default: ``expects``, else the setting's type).
    value: str = ""
    #: Where else the variable is read (the README table says so).
    also: str = ""


#: What JSON Schema can say of a value that ``_identifier`` accepts (keywords aside).
IDENTIFIER_SCHEMA = {"pattern": "^[A-Za-z][A-Za-z0-9_]*$", "not": {"enum": keyword.kwlist}}
POSITIVE_INTEGERS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}
BUCKET_SIZES = {**POSITIVE_INTEGERS, "uniqueItems": True}
TARGET_LIST = {"minItems": 1, "uniqueItems": True}


def env_override(f: object) -> EnvOverride | None:
    """The environment variable of a settings field, if it has one."""
    return getattr(f, "metadata", {}).get("env")


_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def check_targets(targets: list[str] | None, path: str) -> None:
    if targets is None:
        return
    if not targets:
        raise ConfigError(path, f"list at least one target; allowed: {', '.join(TARGETS)}")
    if len(set(targets)) != len(targets):
        raise ConfigError(path, f"a target is listed twice: {targets}")


#: Inductor settings hatch-neuron sets itself for the ``inductor`` target (the portable instruction set).
RESERVED_INDUCTOR_CONFIGS = ("cpp.march",)


def inductor_configs_problem(configs: dict[str, object]) -> str | None:
    reserved = [name for name in configs if name in RESERVED_INDUCTOR_CONFIGS]
    if reserved:
        return f"{reserved[0]!r} is set by hatch-neuron (the portable instruction set the manifest records)"
    bad = next((name for name in configs if not _DOTTED.match(name)), None)
    return f"{bad!r} is not an Inductor setting name (e.g. 'freezing', 'cpp.weight_prepack')" if bad else None


def fold_name(name: str) -> str:
    """A name as Python compares identifiers (NFKC), case-folded: two names equal here collide."""
    return unicodedata.normalize("NFKC", name).casefold()


def factory_arg_problem(value: object) -> str | None:
    """Why ``value`` is not a TOML/YAML scalar, list or table of them (what a factory may receive)."""
    if isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if value == value and abs(value) != float("inf") else f"{value} is not a finite number"
    if isinstance(value, list):
        return next((p for p in map(factory_arg_problem, value) if p), None)
    if isinstance(value, dict):
        bad = next((k for k in value if not isinstance(k, str)), None)
        if bad is not None:
            return f"table keys must be strings, got {bad!r}"
        return next((p for p in map(factory_arg_problem, value.values()) if p), None)
    kind = "null" if value is None else type(value).__name__
    return f"a {kind} is not a string, number, boolean, array or table"


def _factory_args(args: dict[str, object]) -> str | None:
    bad = next((name for name in args if not name.isidentifier() or keyword.iskeyword(name)), None)
    if bad is not None:
        return f"{bad!r} is not a Python keyword-argument name"
    return next((f"{name}: {p}" for name, v in args.items() if (p := factory_arg_problem(v))), None)


def _positive_shape(shape: list[int]) -> str | None:
    if not shape:
        return "a shape needs at least one dimension"
    bad = [d for d in shape if d <= 0]
    return f"dimensions must be positive integers, got {bad[0]}" if bad else None


def _bucket_sizes(sizes: list[int]) -> str | None:
    if not sizes:
        return "list at least one bucket size"
    if any(size <= 0 for size in sizes):
        return f"bucket sizes must be positive, got {sizes}"
    if len(set(sizes)) != len(sizes):
        return f"a bucket size is listed twice: {sizes}"
    return None


def _factory(value: str) -> str | None:
    if _FACTORY.match(value) and not any(keyword.iskeyword(p) for p in re.split(r"[.:]", value)):
        return None
    return f"{value!r} is not 'module:attribute' (for example 'mypkg.nets:make_encoder')"


def _dotted_name(value: str) -> str | None:
    if _DOTTED.match(value) and not any(keyword.iskeyword(p) for p in value.split(".")):
        return None
    return f"{value!r} is not a dotted Python import name"


def _identifier(value: str) -> str | None:
    if value.isidentifier() and not keyword.iskeyword(value) and not value.startswith("_"):
        return None
    return (
        f"{value!r} is not a public Python identifier (letters, digits, '_'; not a keyword; no leading '_')"
    )


@dataclass(frozen=True)
class InputSpec:
    """One input of a model, in call order."""

    shape: list[int] = field(metadata={"check": _positive_shape, "schema": POSITIVE_INTEGERS})
    """Static shape, for example ``[1, 128]``. Compiled artifacts accept exactly this shape."""

    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    """Element type: one of float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool."""

    low: float | None = None
    """Lower bound (inclusive) of the example values. Default: 0 for integers, standard normal for floats."""

    high: float | None = None
    """Upper bound (exclusive) of the example values. Default: 2 for integers. Token inputs want the
    vocabulary size here."""

    name: str | None = field(default=None, metadata={"check": _identifier, "schema": IDENTIFIER_SCHEMA})
    """The input's name (``input_ids``): the compiled model then takes it as a keyword too, so that
    ``model(**tokenizer(...))`` works. Give every input a name or none."""

    def validate(self, path: str) -> None:
        if self.dtype == "bool":
            for name in ("low", "high"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{path}.{name}", "bool inputs take no low/high (values are 0 or 1)")
            return
        if self.dtype in INTEGER_DTYPES:
            for name in ("low", "high"):
                value = getattr(self, name)
                if value is not None and value != int(value):
                    raise ConfigError(
                        f"{path}.{name}", f"{self.dtype} inputs need an integer bound, got {value}"
                    )
        if (self.low is None) != (self.high is None) and self.dtype not in INTEGER_DTYPES:
            raise ConfigError(path, "give both low and high for a float input, or neither")
        low, high = self.bounds()
        if low is not None and high is not None and not low < high:
            raise ConfigError(f"{path}.high", f"high ({high}) must be greater than low ({low})")

    def bounds(self) -> tuple[float | None, float | None]:
        """The effective (low, high), with the integer defaults filled in."""
        if self.dtype in INTEGER_DTYPES:
            return (self.low if self.low is not None else 0, self.high if self.high is not None else 2)
        return self.low, self.high


@dataclass(frozen=True)
class ModelSettings:
    """``[tool.neuron.models.<name>]``: one model to compile. The name is how users import it."""

    factory: str | None = field(
        default=None, metadata={"check": _factory, "schema": {"pattern": _FACTORY.pattern}}
    )
    """``"module:attribute"`` naming a callable that returns an ``nn.Module`` or a function of tensors,
    called with ``factory-args``. Imported from the project being built (flat or ``src/`` layout). A model
    has a ``factory`` or a ``transformers`` checkpoint."""

    factory_args: dict[str, object] = field(
        default_factory=dict,
        metadata={"check": _factory_args, "schema": {"propertyNames": IDENTIFIER_SCHEMA}},
    )
    """Keyword arguments of the factory (``{ width = 32 }``): strings, numbers, booleans, arrays and tables.
    Part of the cache key. For a ``transformers`` model they go to ``from_pretrained``
    (``{ attn_implementation = "eager" }``)."""

    transformers: str | None = None
    """A Hugging Face checkpoint instead of a factory: a folder (relative to the project root) holding
    ``config.json``, the weights and the tokenizer or image processor, or a hub id (``org/name``) read from
    the local Hugging Face cache only: a build downloads nothing unless ``HF_HUB_OFFLINE=0`` is set. The
    model class, the inputs (names, shapes, dtypes, value ranges) and the outputs come from ``task``;
    transformers is imported only by this model's worker (``pip install 'hatch-neuron[transformers]'``)."""

    task: Literal[TASKS] = "auto"  # type: ignore[valid-type]
    """What a ``transformers`` model computes, which picks its class and outputs: ``feature-extraction``
    (AutoModel: ``last_hidden_state``, and ``pooler_output`` where the model has one), ``fill-mask``,
    ``text-classification``, ``token-classification``, ``image-classification`` (``logits``),
    ``question-answering`` (``start_logits``, ``end_logits``); ``auto``: from the checkpoint's
    ``architectures`` (``BertForMaskedLM``: fill-mask; a bare ``BertModel``: feature-extraction)."""

    sequence_length: int | None = field(default=None, metadata={"schema": {"minimum": 1}})
    """Tokens per input of a ``transformers`` text model (its compiled dim 1). Default: 128, or the
    model's ``max_position_embeddings`` where that is smaller."""

    batch_size: int = field(default=1, metadata={"schema": {"minimum": 1}})
    """Batch size (dim 0) of a ``transformers`` model's inputs; ``batch-buckets`` and ``dynamic-batch``
    apply as to any model."""

    inputs: list[InputSpec] | None = field(default=None, metadata={"schema": {"minItems": 1}})
    """One table per input, in call order (required with a ``factory``). A ``transformers`` model's come
    from its checkpoint unless given here."""

    rtol: float | None = field(default=None, metadata={"schema": {"minimum": 0}})
    """Relative tolerance of the build-time check of compiled against eager output. Default by output
    dtype: 1e-4 for float64, 1e-3 for float32, 1e-2 for float16/bfloat16, exact for integers."""

    atol: float | None = field(default=None, metadata={"schema": {"minimum": 0}})
    """Absolute tolerance of that check. Default by output dtype: 1e-6 (float64), 1e-4 (float32),
    1e-2 (16-bit)."""

    batch_buckets: list[int] | None = field(
        default=None, metadata={"check": _bucket_sizes, "schema": BUCKET_SIZES}
    )
    """Batch sizes (dim 0) to compile one artifact each for, e.g. ``[1, 4, 8]``; the declared shapes give
    the other dimensions. A call runs on the smallest bucket its batch fits in, padded with ``pad-value``,
    and the outputs are trimmed back. Every input's dim 0 is the batch."""

    dynamic_batch: bool = False
    """Accept any batch size >= 1, with the semantics of ``torch_neuronx.dynamic_batch``: a batch larger
    than the largest batch bucket is split into chunks of that size, the last one padded, and the outputs
    are concatenated along dim 0. Without ``batch-buckets`` the declared dim 0 is the only bucket."""

    buckets: dict[str, list[int]] = field(
        default_factory=dict,
        metadata={
            "schema": {"propertyNames": {"pattern": "^[1-9][0-9]*$"}, "additionalProperties": BUCKET_SIZES}
        },
    )
    """Buckets on other dimensions, by dimension index, e.g. ``{ 1 = [32, 64, 128] }`` for sequence
    length. Applies to the inputs whose declared size at that dimension is the largest bucket (declare
    shapes at their largest); one artifact per combination of buckets."""

    pad_value: float = 0.0
    """Value that pads inputs up to a bucket (cast to the input's dtype)."""

    output_dims: dict[str, list[int]] = field(default_factory=dict)
    """Only where the build cannot infer it: for output ``i`` (in flattened order), the bucketed input
    dimension that each of its dimensions follows, or -1, e.g. ``{ 0 = [0, 1, -1] }``. By default an output
    dimension follows a bucketed dimension when its size equals the bucket size in every artifact."""

    targets: list[Literal[TARGETS]] | None = field(  # type: ignore[valid-type]
        default=None, metadata={"schema": TARGET_LIST}
    )
    """This model's compile targets, in order of preference at load time, instead of the top-level
    ``targets``: for example ``["cpu"]`` for a model that ``torch.export`` cannot export (no ``inductor``).
    ``HATCH_NEURON_TARGETS`` replaces this too."""

    compiler_args: list[str] | None = None
    """neuronx-cc arguments for this model instead of the top-level ``compiler-args`` (Stable Diffusion's
    text encoder, UNet and VAE decoder are compiled with different flags)."""

    neuron_options: NeuronOptionSettings | None = None
    """Typed ``neuron`` options for this model (``neuron-options = { model-type = "unet-inference" }``):
    each key set here replaces the top-level ``neuron-options``' key."""

    check: Literal["error", "warn", "off"] | None = None
    """The pre-flight checks for this model instead of the top-level ``check``."""

    timeout: float | None = field(default=None, metadata={"schema": {"exclusiveMinimum": 0}})
    """Seconds one worker process of this model may take, instead of the top-level ``timeout``.
    ``HATCH_NEURON_TIMEOUT`` replaces this too."""

    def validate(self, path: str) -> None:
        self._check_source(path)
        check_targets(self.targets, f"{path}.targets")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"{path}.timeout", f"must be > 0 seconds, got {self.timeout}")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{path}.{name}", f"must be >= 0, got {value}")
        if self.inputs is None:  # a checkpoint's, derived at build time, then validated again
            return
        batched = self.dynamic_batch or self.batch_buckets is not None
        if batched and len({spec.shape[0] for spec in self.inputs}) > 1:
            raise ConfigError(
                f"{path}.inputs",
                "batch buckets and dynamic batching need every input's dim 0 to be the batch, but the "
                f"declared dim-0 sizes differ: {[spec.shape[0] for spec in self.inputs]}",
            )
        rank = max(len(spec.shape) for spec in self.inputs)
        for key, sizes in self.buckets.items():
            here = f"{path}.buckets.{key}"
            if key == "0":
                raise ConfigError(here, "dim 0 is the batch dimension", "use batch-buckets = [...] for it")
            if not key.isdigit() or not 0 < int(key) < rank:
                raise ConfigError(here, f"not a dimension index of the inputs (1 to {rank - 1})")
            problem = _bucket_sizes(sizes)
            if problem:
                raise ConfigError(here, problem)
            if not any(
                len(spec.shape) > int(key) and spec.shape[int(key)] == max(sizes) for spec in self.inputs
            ):
                raise ConfigError(
                    here,
                    f"no input has size {max(sizes)} (the largest bucket) at dim {key}",
                    "declare the bucketed inputs' shapes at their largest bucket",
                )
        integer_input = any(spec.dtype in INTEGER_DTYPES or spec.dtype == "bool" for spec in self.inputs)
        if integer_input and self.pad_value != int(self.pad_value):
            raise ConfigError(
                f"{path}.pad-value", f"integer inputs need an integer pad value, got {self.pad_value}"
            )

    def _check_source(self, path: str) -> None:
        """A factory or a checkpoint (not both); inputs for a factory; names on every input or none."""
        if (self.factory is None) == (self.transformers is None):
            if self.factory is not None:
                raise ConfigError(
                    f"{path}.transformers",
                    "a model with a factory takes no transformers checkpoint",
                    "declare the model by a factory or by a transformers checkpoint, not both",
                )
            raise ConfigError(
                f"{path}.factory",
                "missing required key (expected a string)",
                'or transformers = "<folder or hub id>" for a Hugging Face checkpoint',
            )
        if self.factory is not None:
            own = [k for k in CHECKPOINT_KEYS if getattr(self, k.replace("-", "_")) != _DEFAULTS[k]]
            if own:
                raise ConfigError(
                    f"{path}.{own[0]}", "is for transformers checkpoints; this model has a factory"
                )
            if self.inputs is None:
                raise ConfigError(f"{path}.inputs", "missing required key (expected an array)")
        elif not self.transformers.strip():
            raise ConfigError(f"{path}.transformers", "expected a folder or a hub id, got an empty string")
        for key in ("sequence_length", "batch_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{path}.{key.replace('_', '-')}", f"must be >= 1, got {value}")
        if self.inputs == []:
            raise ConfigError(f"{path}.inputs", "a model needs at least one input")
        named = [spec.name is not None for spec in self.inputs or ()]
        if self.transformers is not None and not all(named):
            raise ConfigError(
                f"{path}.inputs[{named.index(False)}].name",
                "a transformers model's declared inputs need names (the keywords its forward takes)",
            )
        if any(named) and not all(named):
            raise ConfigError(f"{path}.inputs[{named.index(False)}].name", "name every input or none")
        names = [spec.name for spec in self.inputs or () if spec.name]
        if len(set(names)) != len(names):
            raise ConfigError(f"{path}.inputs", f"an input name is used twice: {names}")

    def bucketed_dims(self, index: int) -> list[int]:
        """The bucketed dimensions of input ``index``: dim 0 of every input when batched, and dim ``d`` of
        the inputs declared at the largest bucket of ``d``."""
        shape = self.inputs[index].shape
        return [
            dim
            for dim, sizes in self.bucket_axes().items()
            if dim == 0 or (dim < len(shape) and shape[dim] == sizes[-1])
        ]

    def bucket_axes(self) -> dict[int, list[int]]:
        """Bucketed dimension -> sorted sizes (dim 0 when batch-bucketed or dynamically batched)."""
        axes = {int(key): sorted(sizes) for key, sizes in self.buckets.items()}
        if self.batch_buckets is not None:
            axes[0] = sorted(self.batch_buckets)
        elif self.dynamic_batch:
            axes[0] = [self.inputs[0].shape[0]]
        return dict(sorted(axes.items()))


_DEFAULTS = {"task": "auto", "sequence-length": None, "batch-size": 1}


@dataclass(frozen=True)
class CorePlacement:
    """A fixed range of NeuronCores (relative to the cores visible to the process)."""

    start: int = field(metadata={"schema": {"minimum": 0}})
    """First NeuronCore."""

    count: int = field(default=1, metadata={"schema": {"minimum": 1}})
    """How many NeuronCores, from ``start``."""

    def validate(self, path: str) -> None:
        if self.start < 0:
            raise ConfigError(f"{path}.start", f"must be >= 0, got {self.start}")
        if self.count < 1:
            raise ConfigError(f"{path}.count", f"must be >= 1, got {self.count}")


@dataclass(frozen=True)
class NeuronSettings:
    """``[tool.neuron]``: what to compile and how the built package loads it."""

    models: dict[str, ModelSettings] = field(
        metadata={"key_check": _identifier, "schema": {"propertyNames": IDENTIFIER_SCHEMA}}
    )
    """The models, one table each; the table name is the name users import."""

    models_file: list[str] | str | None = None
    """YAML files (relative to the project root) holding more models: ``models:`` with tables in exactly
    the schema of ``[tool.neuron.models]``, merged with these (a name declared twice is an error). Errors
    in them name the file, line and column. Read with PyYAML's safe loader; ``on``/``off``/``yes``/``no``
    are strings there, as in YAML 1.2."""

    targets: list[Literal[TARGETS]] = field(  # type: ignore[valid-type]
        default_factory=lambda: ["neuron"],
        metadata={
            "env": EnvOverride(
                "HATCH_NEURON_TARGETS", item="target", models_too=True, value="comma-separated targets"
            ),
            "schema": TARGET_LIST,
        },
    )
    """Compile targets, in order of preference at load time: ``neuron`` (``torch_neuronx.trace``),
    ``xla`` (torch-xla lowering, the path ``torch_neuronx.trace`` takes: an HLO proto for neuronx-cc and a
    StableHLO program run by torch-xla on any PJRT device; needs ``hatch-neuron[xla]``), ``inductor``
    (AOTInductor native code, x86-64 with AVX2, exact torch), ``cpu`` (TorchScript, runs anywhere).
    ``HATCH_NEURON_TARGETS=cpu`` (comma-separated) replaces this at build time."""

    module: str = field(default="compiled", metadata={"check": _identifier, "schema": IDENTIFIER_SCHEMA})
    """Name of the generated module: models are imported from ``<package>.<module>``."""

    package: str | None = field(
        default=None, metadata={"check": _dotted_name, "schema": {"pattern": _DOTTED.pattern}}
    )
    """Import package that receives the artifacts. Default: inferred from the project name, or the only
    top-level package of the project."""

    compiler_args: list[str] = field(default_factory=list)
    """Arguments passed to neuronx-cc (``compiler_args`` of ``torch_neuronx.trace``) for target ``neuron``."""

    neuron_target: Literal[NEURON_INSTANCE_TARGETS] | None = None  # type: ignore[valid-type]
    """Instance family to compile for (``--target`` of neuronx-cc): inf2, trn1, trn1n or trn2. Needed
    where the build host has no Neuron device."""

    neuron_options: NeuronOptionSettings = field(default_factory=NeuronOptionSettings)
    """Typed options of target ``neuron`` (reference below: ``auto-cast``, ``auto-cast-type``,
    ``optlevel``, ``model-type``, ``inline-weights``, ``async-load``, ``lazy-load``), each becoming exactly
    the documented neuronx-cc flag or torch-neuronx call. A ``compiler-args`` flag that sets one of them to
    another value is an error."""

    inductor_device: Literal[INDUCTOR_DEVICES] = "cpu"  # type: ignore[valid-type]
    """Device the ``inductor`` target compiles for: ``cpu`` (portable x86-64-v3 code) or ``cuda`` (kernels
    for the build host's GPU, which must exist; the package then loads ``inductor`` only where CUDA is
    available). Such a model takes CPU or CUDA tensors and returns its outputs on the inputs' device."""

    inductor_configs: dict[str, bool | int | float | str] = field(
        default_factory=dict, metadata={"check": inductor_configs_problem}
    )
    """Inductor settings for the ``inductor`` target, passed to AOTInductor as its ``inductor_configs``
    (part of the cache key). What the project leaves out, hatch-neuron chooses for inference: a CPU graph
    with a convolution compiles with ``freezing = true`` (weights folded into the graph as constants,
    batch norms into the convolutions: ResNet-18 1.35x faster here), other graphs without it (no gain
    measured on a small transformer encoder); under freezing, ``"cpp.weight_prepack" = false``,
    since weights prepacked for the build host's oneDNN kernels are reordered on every call by a CPU
    that runs others (ResNet-18 built here with AVX-512, run with AVX2 kernels: 13x slower; the loader
    warns when that happens). The manifest records what was added. Quote dotted names. ``cpp.march`` is
    hatch-neuron's (the portable instruction set) and cannot be set; names this torch's Inductor does
    not have fail the build."""

    load: Literal["import", "lazy"] = "import"
    """``import``: load every model when the generated module is imported; ``lazy``: on first call."""

    warmup: int | Literal["auto"] = field(
        default="auto",
        metadata={
            "env": EnvOverride("HATCH_NEURON_WARMUP", when="run"),
            "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"enum": ["auto"]}]},
        },
    )
    """Calls each artifact runs, on zeros of its compiled shapes, when it loads, so that a user's first
    call runs at steady-state speed: TorchScript (``cpu``, ``neuron``) optimises its graph over the first
    two calls, torch-xla compiles on the first. Loading then takes that many calls longer. ``auto``: 2
    for artifacts under 64 MiB and for every ``xla`` artifact, none for larger ones (the first call's
    one-off work is a small part of a large model's call: BERT-base's first call is 1.7x its steady
    state, while two warm-up calls would double its import). ``0``: none. ``HATCH_NEURON_WARMUP``
    overrides it where the package is loaded."""

    timeout: float = field(
        default=3600.0,
        metadata={
            "env": EnvOverride(
                "HATCH_NEURON_TIMEOUT", expects="a positive number of seconds", models_too=True
            ),
            "schema": {"exclusiveMinimum": 0},
        },
    )
    """Seconds one worker process (a model's checks, or one compile job: import, trace, compile, verify)
    may take before the build fails.
    ``HATCH_NEURON_TIMEOUT`` overrides it."""

    check: Literal["error", "warn", "off"] = "error"
    """Pre-flight checks for what makes ``torch_neuronx.trace`` fail or give wrong answers (data-dependent
    control flow and shapes, dtype changes, batch dependence with dynamic batching), run before compiling:
    ``error`` fails the build on a finding, ``warn`` prints it, ``off`` skips them. ``hatch-neuron check``
    runs the same checks on demand."""

    placement: Literal["round-robin"] | CorePlacement = "round-robin"
    """Where ``neuron`` artifacts load: ``"round-robin"`` (Neuron's default: each load takes the next
    visible NeuronCore) or a table ``{ start = 0, count = 2 }`` pinning them to those cores (replica ``i``
    on core ``start + i % count``). ``NEURON_RT_VISIBLE_CORES`` / ``NEURON_RT_NUM_CORES`` decide which cores
    are visible. Ignored by portable targets."""

    cache: Literal["on", "off", "verify"] = field(
        default="on", metadata={"env": EnvOverride("HATCH_NEURON_CACHE")}
    )
    """The compile cache: ``on`` reuses artifacts whose computation, input specs, target, compiler options
    and toolchain versions are unchanged (a warm build whose model files are unchanged does not even run
    the factories); ``verify`` always runs the factories and keys artifacts by the traced computation;
    ``off`` compiles everything. ``HATCH_NEURON_CACHE`` overrides."""

    cache_dir: str | None = field(
        default=None, metadata={"env": EnvOverride("HATCH_NEURON_CACHE_DIR", also="`cache` command")}
    )
    """Folder of the compile cache (relative to the project when relative). Default: the user cache
    folder (``~/.cache/hatch-neuron`` on Linux, via platformdirs). ``HATCH_NEURON_CACHE_DIR`` overrides."""

    remote_cache: str | None = field(
        default=None,
        metadata={
            "env": EnvOverride(
                "HATCH_NEURON_REMOTE_CACHE",
                empty_unsets=True,
                value="a URL (empty: none)",
                also="`cache --remote`",
            ),
            "schema": {"pattern": "://"},
        },
    )
    """A compile cache shared by many machines, layered under the local one: any fsspec URL, such as
    ``s3://bucket/prefix`` (``pip install 'hatch-neuron[remote]'``). A local miss looks there before
    compiling; what a build compiles (and verified) is uploaded. Credentials come from the standard AWS
    environment and configuration, never from here. An unreachable or slow remote is reported and the
    build compiles locally. ``HATCH_NEURON_REMOTE_CACHE`` overrides (an empty value turns it off)."""

    remote_cache_mode: Literal["read-write", "read-only", "off"] = field(
        default="read-write", metadata={"env": EnvOverride("HATCH_NEURON_REMOTE_CACHE_MODE")}
    )
    """``read-write`` downloads and uploads; ``read-only`` only downloads (for untrusted builders such as
    pull-request CI); ``off`` ignores ``remote-cache``. ``HATCH_NEURON_REMOTE_CACHE_MODE`` overrides."""

    remote_cache_endpoint_url: str | None = None
    """The endpoint of an S3-compatible store (MinIO, Ceph, a local test server), e.g.
    ``http://127.0.0.1:9000``. Default: AWS's, or ``AWS_ENDPOINT_URL`` when set."""

    remote_cache_timeout: float = field(
        default=10.0,
        metadata={
            "env": EnvOverride("HATCH_NEURON_REMOTE_CACHE_TIMEOUT", expects="a positive number of seconds"),
            "schema": {"exclusiveMinimum": 0},
        },
    )
    """Seconds one remote operation (connect, or one read or write) may take before the remote cache is
    given up for the rest of the build. ``HATCH_NEURON_REMOTE_CACHE_TIMEOUT`` overrides."""

    jobs: int | None = field(
        default=None,
        metadata={
            "env": EnvOverride("HATCH_NEURON_JOBS", expects="a whole number >= 1"),
            "schema": {"minimum": 1},
        },
    )
    """How many compile jobs (a model at one bucket for one target) run at once, each in its own worker
    process. Default: the number of CPUs this process may use. Each worker gets the CPUs divided by the
    workers that can run at once (all of them for a build with one compile job). ``HATCH_NEURON_JOBS``
    overrides."""

    workers: Literal["preloaded", "fresh"] = field(
        default="preloaded", metadata={"env": EnvOverride("HATCH_NEURON_WORKERS")}
    )
    """How worker processes start: ``preloaded`` forks each from a server process that has imported torch
    and the libraries (from the Python installation, never the project) that earlier workers imported,
    such as transformers, saving seconds per worker; ``fresh`` starts each in a new interpreter. Both run
    each model's code in a process of its own. ``HATCH_NEURON_WORKERS`` overrides."""

    executor: Literal["local", "ray"] = field(
        default="local", metadata={"env": EnvOverride("HATCH_NEURON_EXECUTOR")}
    )
    """Where compile jobs run: ``local`` in worker processes on this machine; ``ray`` each job (a model at
    one bucket for one target) as a task on the Ray cluster at ``ray-address``, whose results come back
    into this build's compile cache and are then taken from it like any cached artifact (checked by sha256,
    loaded and compared with eager here) before they enter a wheel. Needs ``hatch-neuron[ray]``.
    ``HATCH_NEURON_EXECUTOR`` overrides."""

    ray_address: str | None = field(default=None, metadata={"env": EnvOverride("HATCH_NEURON_RAY_ADDRESS")})
    """The Ray cluster's address (``host:port`` of its head, as ``ray start --head`` prints). Default:
    ``RAY_ADDRESS``. ``HATCH_NEURON_RAY_ADDRESS`` overrides."""

    ray_sources: Literal["ship", "shared"] = "ship"
    """How the cluster's nodes see the project: ``ship`` uploads the project folder (without ``.git``,
    virtual environments, ``build`` and ``dist``) as each task's Ray working directory, and this
    hatch-neuron with it; ``shared`` runs the tasks on the project's own paths, for a folder every node
    mounts at the same place (and a hatch-neuron installed on the nodes)."""

    ray_connect_timeout: float = field(
        default=20.0,
        metadata={
            "env": EnvOverride("HATCH_NEURON_RAY_CONNECT_TIMEOUT", expects="a positive number of seconds"),
            "schema": {"exclusiveMinimum": 0},
        },
    )
    """Seconds to reach the Ray cluster before the build fails (or falls back, see
    ``executor-fallback``). ``HATCH_NEURON_RAY_CONNECT_TIMEOUT`` overrides."""

    executor_fallback: Literal["error", "local"] = field(
        default="error", metadata={"env": EnvOverride("HATCH_NEURON_EXECUTOR_FALLBACK")}
    )
    """When the Ray cluster cannot be reached (or ray is not installed): ``error`` fails the build;
    ``local`` warns and compiles on this machine. A job that fails on the cluster fails the build either
    way. ``HATCH_NEURON_EXECUTOR_FALLBACK`` overrides."""

    replicas: int = field(
        default=1,
        metadata={"env": EnvOverride("HATCH_NEURON_REPLICAS", when="run"), "schema": {"minimum": 1}},
    )
    """Copies of each model to load (one per NeuronCore on ``neuron``, one per thread on ``cpu``); chunks
    of a dynamically batched call run on them concurrently."""

    def validate(self, path: str) -> None:
        if not self.models:
            raise ConfigError(
                f"{path}.models", "declare at least one model, e.g. [tool.neuron.models.encoder]"
            )
        check_targets(self.targets, f"{path}.targets")
        if self.replicas < 1:
            raise ConfigError(f"{path}.replicas", f"must be >= 1, got {self.replicas}")
        if self.warmup != "auto" and self.warmup < 0:
            raise ConfigError(f"{path}.warmup", f"must be >= 0, got {self.warmup}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"{path}.jobs", f"must be >= 1, got {self.jobs}")
        if self.ray_connect_timeout <= 0:
            raise ConfigError(
                f"{path}.ray-connect-timeout", f"must be > 0 seconds, got {self.ray_connect_timeout}"
            )
        if self.remote_cache_timeout <= 0:
            raise ConfigError(
                f"{path}.remote-cache-timeout", f"must be > 0 seconds, got {self.remote_cache_timeout}"
            )
        if self.remote_cache is not None and "://" not in self.remote_cache:
            raise ConfigError(
                f"{path}.remote-cache",
                f"expected a URL such as s3://bucket/prefix, got {self.remote_cache!r}",
            )
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout", f"must be > 0 seconds, got {self.timeout}")
        for name, model in self.models.items():
            self._check_neuron_options(path, name, model)
        folded: dict[str, str] = {}
        for name in self.models:
            same = folded.get(fold_name(name))
            if same is not None:
                how = (
                    "differ only in case (artifact files would collide on case-insensitive file systems)"
                    if name.lower() == same.lower()
                    else "are the same name to Python, which reads identifiers in NFKC normal form "
                    f"(an import of {unicodedata.normalize('NFKC', name)!r} gets one of them)"
                )
                raise ConfigError(
                    f"{path}.models.{name}", f"duplicate model name: {name!r} and {same!r} {how}"
                )
            folded[fold_name(name)] = name

    def _check_neuron_options(self, root: str, name: str, model: ModelSettings) -> None:
        """A typed option and a raw ``compiler-args`` flag of one model must not disagree."""
        merged = self.neuron_options.merged(model.neuron_options)
        merged.validate(f"{root}.models.{name}.neuron-options")  # keys from both tables together
        chosen = merged.chosen()
        args = self.compiler_args if model.compiler_args is None else model.compiler_args
        found = conflict(chosen, args)
        if found is None:
            return
        key, raw = found
        own = model.neuron_options is not None and key in model.neuron_options.chosen()
        path = f"{root}.models.{name}"
        where = f"{path if own else root}.neuron-options.{key}"
        args_at = f"{path if model.compiler_args is not None else root}.compiler-args"
        raise ConfigError(
            where,
            f"is {chosen[key]!r}, but {args_at} sets it to {raw!r}",
            "set it in one place: drop the flag from compiler-args or the key from neuron-options",
        )
