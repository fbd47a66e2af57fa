"""Tests of the ``[tool.neuron]`` configuration layer (``hatch_neuron.config``).

Fast: nothing here imports torch, traces a model or builds a wheel. Every error case asserts the key path,
the message (what was found, what is allowed) and the hint, because those are what a user sees.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hatch_neuron.config import ConfigError, load_settings, settings_from_table
from hatch_neuron.config import model as model_module
from hatch_neuron.config.model import DTYPES, InputSpec, ModelSettings, NeuronSettings
from hatch_neuron.config.neuron_options import raw_flag_values

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project" / "pyproject.toml"

ENC = "tool.neuron.models.enc"
IN0 = f"{ENC}.inputs[0]"
DROP = object()  # a key given this value is removed from the table
ALLOWED_DTYPES = "allowed: " + ", ".join(DTYPES)


def _apply(table: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    for key, value in keys.items():
        if value is DROP:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def minimal(**top: Any) -> dict[str, Any]:
    """A valid table with one model ``enc`` and one input; keyword arguments edit the top level."""
    table = {"models": {"enc": {"factory": "pkg.nets:make_enc", "inputs": [{"shape": [1, 4]}]}}}
    return _apply(table, {k.replace("_", "-"): v for k, v in top.items()})


def with_model(**keys: Any) -> dict[str, Any]:
    table = minimal()
    _apply(table["models"]["enc"], keys)
    return table


def with_input(**keys: Any) -> dict[str, Any]:
    table = minimal()
    _apply(table["models"]["enc"]["inputs"][0], keys)
    return table


def error(table: Any, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings_from_table(table, {} if environ is None else environ)
    err = info.value
    expected = f"{err.path}: {err.message}" + (f" ({err.hint})" if err.hint else "")
    assert str(err) == expected
    assert err.file is None
    return err


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# (table, key path, fragments the message must contain, exact hint or None)
ERROR_CASES = [
    # --- unknown keys, at every level, with 'did you mean' for typos
    pytest.param(
        minimal() | {"compiler_args": ["-O2"]},
        "tool.neuron.compiler_args",
        [
            "unknown key; allowed: cache, cache-dir, check, compiler-args, executor, executor-fallback, "
            "inductor-configs, inductor-device, jobs, load, models, models-file, module, neuron-options, "
            "neuron-target, package, placement, ray-address, ray-connect-timeout, ray-sources, remote-cache, "
            "remote-cache-endpoint-url, remote-cache-mode, remote-cache-timeout, replicas, targets, timeout"
        ],
        "did you mean 'compiler-args'?",
        id="unknown-top-compiler_args",
    ),
    pytest.param(
        minimal() | {"target": ["cpu"]},
        "tool.neuron.target",
        ["unknown key"],
        "did you mean 'targets'?",
        id="unknown-top-target",
    ),
    pytest.param(
        minimal() | {"zzz": 1}, "tool.neuron.zzz", ["unknown key", "models"], None, id="unknown-top-no-hint"
    ),
    pytest.param(
        with_model(fatcory="pkg:make"),
        f"{ENC}.fatcory",
        [
            "unknown key; allowed: atol, batch-buckets, batch-size, buckets, check, compiler-args, "
            "dynamic-batch, factory, factory-args, inputs, neuron-options, output-dims, pad-value, rtol, "
            "sequence-length, targets, task, timeout, transformers"
        ],
        "did you mean 'factory'?",
        id="unknown-model-fatcory",
    ),
    pytest.param(
        with_model(input=[]),
        f"{ENC}.input",
        ["unknown key"],
        "did you mean 'inputs'?",
        id="unknown-model-input",
    ),
    pytest.param(
        with_input(dtpye="int64"),
        f"{IN0}.dtpye",
        ["unknown key; allowed: dtype, high, low, name, shape"],
        "did you mean 'dtype'?",
        id="unknown-input-dtpye",
    ),
    pytest.param(
        with_input(hgih=3), f"{IN0}.hgih", ["unknown key"], "did you mean 'high'?", id="unknown-input-hgih"
    ),
    # --- wrong types
    pytest.param("cpu", "tool.neuron", ["expected a table, got string 'cpu'"], None, id="type-root-string"),
    pytest.param(
        minimal(targets="cpu"),
        "tool.neuron.targets",
        ["expected an array, got string 'cpu'"],
        None,
        id="type-targets-string",
    ),
    pytest.param(
        minimal(compiler_args="-O2"),
        "tool.neuron.compiler-args",
        ["expected an array, got string '-O2'"],
        None,
        id="type-compiler-args-string",
    ),
    pytest.param(
        minimal(compiler_args=["-O", 2]),
        "tool.neuron.compiler-args[1]",
        ["expected a string, got integer 2"],
        None,
        id="type-compiler-args-item",
    ),
    pytest.param(
        minimal(models=[]),
        "tool.neuron.models",
        ["expected a table, got array []"],
        None,
        id="type-models-array",
    ),
    pytest.param(
        minimal(models={"enc": "pkg:make"}),
        ENC,
        ["expected a table, got string 'pkg:make'"],
        None,
        id="type-model-string",
    ),
    pytest.param(
        with_model(inputs={"shape": [1]}),
        f"{ENC}.inputs",
        ["expected an array, got table {'shape': [1]}"],
        None,
        id="type-inputs-table",
    ),
    pytest.param(
        with_model(inputs=[[1, 4]]), IN0, ["expected a table, got array [1, 4]"], None, id="type-input-array"
    ),
    pytest.param(
        with_input(shape=4),
        f"{IN0}.shape",
        ["expected an array, got integer 4"],
        None,
        id="type-shape-integer",
    ),
    pytest.param(
        minimal(timeout=True),
        "tool.neuron.timeout",
        ["expected a number, got boolean True"],
        None,
        id="type-timeout-bool",
    ),
    pytest.param(
        minimal(timeout="60"),
        "tool.neuron.timeout",
        ["expected a number, got string '60'"],
        None,
        id="type-timeout-string",
    ),
    pytest.param(
        with_model(rtol=False),
        f"{ENC}.rtol",
        ["expected a number, got boolean False"],
        None,
        id="type-rtol-bool",
    ),
    pytest.param(
        with_input(dtype="int64", low=True),
        f"{IN0}.low",
        ["expected a number, got boolean True"],
        None,
        id="type-low-bool",
    ),
    pytest.param(
        with_input(shape=[1, 1.5]),
        f"{IN0}.shape[1]",
        ["expected an integer, got number 1.5"],
        None,
        id="type-shape-float",
    ),
    pytest.param(
        with_input(shape=[2.0]),
        f"{IN0}.shape[0]",
        ["expected an integer, got number 2.0"],
        None,
        id="type-shape-integral-float",
    ),
    pytest.param(
        with_input(shape=["1"]),
        f"{IN0}.shape[0]",
        ["expected an integer, got string '1'"],
        None,
        id="type-shape-string",
    ),
    pytest.param(
        with_input(shape=[True]),
        f"{IN0}.shape[0]",
        ["expected an integer, got boolean True"],
        None,
        id="type-shape-bool",
    ),
    pytest.param(
        with_model(factory={"module": "pkg"}),
        f"{ENC}.factory",
        ["expected a string, got table {'module': 'pkg'}"],
        None,
        id="type-factory-table",
    ),
    pytest.param(
        minimal(module={"name": "x"}),
        "tool.neuron.module",
        ["expected a string, got table {'name': 'x'}"],
        None,
        id="type-module-table",
    ),
    pytest.param(
        minimal(package=3),
        "tool.neuron.package",
        ["expected a string, got integer 3"],
        None,
        id="type-package-integer",
    ),
    pytest.param(
        with_input(dtype={"name": "float32"}),
        f"{IN0}.dtype",
        ["table {'name': 'float32'} is not allowed", ALLOWED_DTYPES],
        None,
        id="type-dtype-table",
    ),
    pytest.param(
        with_input(dtype=32),
        f"{IN0}.dtype",
        ["integer 32 is not allowed", ALLOWED_DTYPES],
        None,
        id="type-dtype-integer",
    ),
    # --- bad shapes
    pytest.param(
        with_input(shape=[]), f"{IN0}.shape", ["a shape needs at least one dimension"], None, id="shape-empty"
    ),
    pytest.param(
        with_input(shape=[0]),
        f"{IN0}.shape",
        ["dimensions must be positive integers, got 0"],
        None,
        id="shape-zero",
    ),
    pytest.param(
        with_input(shape=[1, -3]),
        f"{IN0}.shape",
        ["dimensions must be positive integers, got -3"],
        None,
        id="shape-negative",
    ),
    # --- unknown dtypes, literals
    pytest.param(
        with_input(dtype="flaot32"),
        f"{IN0}.dtype",
        ["string 'flaot32' is not allowed", ALLOWED_DTYPES],
        "did you mean 'float32'?",
        id="dtype-typo",
    ),
    pytest.param(
        with_input(dtype="bfloat"),
        f"{IN0}.dtype",
        ["string 'bfloat' is not allowed", ALLOWED_DTYPES],
        "did you mean 'bfloat16'?",
        id="dtype-bfloat",
    ),
    pytest.param(
        with_input(dtype="fp16"),
        f"{IN0}.dtype",
        ["string 'fp16' is not allowed", ALLOWED_DTYPES],
        None,
        id="dtype-no-hint",
    ),
    pytest.param(
        minimal(neuron_target="inf3"),
        "tool.neuron.neuron-target",
        ["string 'inf3' is not allowed; allowed: inf2, trn1, trn1n, trn2"],
        "did you mean 'inf2'?",
        id="neuron-target-typo",
    ),
    pytest.param(
        minimal(load="eager"),
        "tool.neuron.load",
        ["string 'eager' is not allowed; allowed: import, lazy"],
        None,
        id="load-unknown",
    ),
    # --- targets
    pytest.param(
        minimal(targets=["neuron", "cpux"]),
        "tool.neuron.targets[1]",
        ["string 'cpux' is not allowed; allowed: neuron, xla, inductor, cpu"],
        "did you mean 'cpu'?",
        id="target-unknown",
    ),
    pytest.param(
        minimal(targets=[]),
        "tool.neuron.targets",
        ["list at least one target; allowed: neuron, xla, inductor, cpu"],
        None,
        id="targets-empty",
    ),
    pytest.param(
        minimal(targets=["cpu", "neuron", "cpu"]),
        "tool.neuron.targets",
        ["a target is listed twice: ['cpu', 'neuron', 'cpu']"],
        None,
        id="targets-duplicate",
    ),
    # --- names: module, package, case-insensitive duplicates
    pytest.param(
        minimal(module="my-mod"),
        "tool.neuron.module",
        ["'my-mod' is not a public Python identifier"],
        None,
        id="module-not-identifier",
    ),
    pytest.param(
        minimal(module="_compiled"), "tool.neuron.module", ["no leading '_'"], None, id="module-private"
    ),
    pytest.param(
        minimal(package="my-pkg"),
        "tool.neuron.package",
        ["'my-pkg' is not a dotted Python import name"],
        None,
        id="package-dash",
    ),
    pytest.param(
        minimal(package="pkg.class"),
        "tool.neuron.package",
        ["'pkg.class' is not a dotted Python import name"],
        None,
        id="package-keyword",
    ),
    pytest.param(
        {"models": {"enc": minimal()["models"]["enc"], "Enc": minimal()["models"]["enc"]}},
        "tool.neuron.models.Enc",
        ["duplicate model name: 'Enc' and 'enc' differ only in case", "case-insensitive"],
        None,
        id="model-names-case",
    ),
    # --- missing and empty
    pytest.param(
        {}, "tool.neuron.models", ["missing required key (expected a table)"], None, id="missing-models"
    ),
    pytest.param(
        minimal(models={}),
        "tool.neuron.models",
        ["declare at least one model", "[tool.neuron.models.encoder]"],
        None,
        id="models-empty",
    ),
    pytest.param(
        with_model(factory=DROP),
        f"{ENC}.factory",
        ["missing required key (expected a string)"],
        'or transformers = "<folder or hub id>" for a Hugging Face checkpoint',
        id="missing-factory",
    ),
    pytest.param(
        with_model(inputs=DROP),
        f"{ENC}.inputs",
        ["missing required key (expected an array)"],
        None,
        id="missing-inputs",
    ),
    pytest.param(
        with_model(inputs=[]), f"{ENC}.inputs", ["a model needs at least one input"], None, id="inputs-empty"
    ),
    pytest.param(
        with_input(shape=DROP, dtype="float32"),
        f"{IN0}.shape",
        ["missing required key (expected an array)"],
        None,
        id="missing-shape",
    ),
    # --- integer and float input bounds
    pytest.param(
        with_input(dtype="int64", low=5, high=5),
        f"{IN0}.high",
        ["high (5.0) must be greater than low (5.0)"],
        None,
        id="bounds-int-equal",
    ),
    pytest.param(
        with_input(dtype="int32", low=9, high=3),
        f"{IN0}.high",
        ["high (3.0) must be greater than low (9.0)"],
        None,
        id="bounds-int-reversed",
    ),
    pytest.param(
        with_input(dtype="int64", low=5),
        f"{IN0}.high",
        ["high (2) must be greater than low (5.0)"],
        None,
        id="bounds-int-low-above-default-high",
    ),
    pytest.param(
        with_input(dtype="float32", low=1.0, high=-1.0),
        f"{IN0}.high",
        ["high (-1.0) must be greater than low (1.0)"],
        None,
        id="bounds-float-reversed",
    ),
    pytest.param(
        with_input(dtype="int64", low=0.5, high=4),
        f"{IN0}.low",
        ["int64 inputs need an integer bound, got 0.5"],
        None,
        id="bounds-int64-float-low",
    ),
    pytest.param(
        with_input(dtype="uint8", high=2.5),
        f"{IN0}.high",
        ["uint8 inputs need an integer bound, got 2.5"],
        None,
        id="bounds-uint8-float-high",
    ),
    pytest.param(
        with_input(dtype="bool", low=0, high=2),
        f"{IN0}.low",
        ["bool inputs take no low/high"],
        None,
        id="bounds-bool-both",
    ),
    pytest.param(
        with_input(dtype="bool", low=0),
        f"{IN0}.low",
        ["bool inputs take no low/high"],
        None,
        id="bounds-bool-low",
    ),
    pytest.param(
        with_input(dtype="float16", low=-1.0),
        IN0,
        ["give both low and high for a float input, or neither"],
        None,
        id="bounds-float-one-side",
    ),
    # --- tolerances and timeout
    pytest.param(
        with_model(rtol=-1e-3), f"{ENC}.rtol", ["must be >= 0, got -0.001"], None, id="rtol-negative"
    ),
    pytest.param(with_model(atol=-1), f"{ENC}.atol", ["must be >= 0, got -1.0"], None, id="atol-negative"),
    pytest.param(
        minimal(timeout=0), "tool.neuron.timeout", ["must be > 0 seconds, got 0.0"], None, id="timeout-zero"
    ),
    pytest.param(
        minimal(timeout=-5.5),
        "tool.neuron.timeout",
        ["must be > 0 seconds, got -5.5"],
        None,
        id="timeout-negative",
    ),
    pytest.param(
        minimal(warmup="sometimes"),
        "tool.neuron.warmup",
        ["expected an integer or one of 'auto', got string 'sometimes'"],
        None,
        id="warmup-word",
    ),
    pytest.param(
        minimal(warmup=-1), "tool.neuron.warmup", ["must be >= 0, got -1"], None, id="warmup-negative"
    ),
    pytest.param(
        minimal(workers="forked"),
        "tool.neuron.workers",
        ["string 'forked' is not allowed; allowed: preloaded, fresh"],
        None,
        id="workers-unknown",
    ),
    pytest.param(
        minimal(compiler_args=["--optlevel", "2"], neuron_options={"optlevel": 3}),
        "tool.neuron.neuron-options.optlevel",
        ["is 3, but tool.neuron.compiler-args sets it to '2'"],
        "set it in one place: drop the flag from compiler-args or the key from neuron-options",
        id="neuron-option-contradicts-compiler-args",
    ),
    pytest.param(
        with_model(**{"compiler-args": ["--auto-cast=all"], "neuron-options": {"auto-cast": "matmult"}}),
        f"{ENC}.neuron-options.auto-cast",
        [f"is 'matmult', but {ENC}.compiler-args sets it to 'all'"],
        "set it in one place: drop the flag from compiler-args or the key from neuron-options",
        id="model-neuron-option-contradicts-its-compiler-args",
    ),
    pytest.param(
        minimal(compiler_args=["-O1"], neuron_options={"optlevel": 3}),
        "tool.neuron.neuron-options.optlevel",
        ["is 3, but tool.neuron.compiler-args sets it to '1'"],
        "set it in one place: drop the flag from compiler-args or the key from neuron-options",
        id="neuron-option-contradicts-short-flag",
    ),
    pytest.param(
        with_model(**{"neuron-options": {"optlevel": 4}}),
        f"{ENC}.neuron-options.optlevel",
        ["must be 1, 2 or 3, got 4"],
        None,
        id="neuron-optlevel-range",
    ),
    pytest.param(
        minimal(neuron_options={"auto-cast": "none", "auto-cast-type": "bf16"}),
        "tool.neuron.neuron-options.auto-cast-type",
        ['has no effect with auto-cast = "none"'],
        'set auto-cast = "matmult" or "all", or leave auto-cast-type out',
        id="neuron-auto-cast-type-without-cast",
    ),
    pytest.param(
        with_model(**{"neuron-options": {"auto-cast-type": "bf16"}})
        | {"neuron-options": {"auto-cast": "none"}},
        f"{ENC}.neuron-options.auto-cast-type",
        ['has no effect with auto-cast = "none"'],
        'set auto-cast = "matmult" or "all", or leave auto-cast-type out',
        id="neuron-merged-options-checked-together",
    ),
    pytest.param(
        minimal(neuron_options={"auto-cast": "matmul"}),
        "tool.neuron.neuron-options.auto-cast",
        ["string 'matmul' is not allowed; allowed: none, matmult, all"],
        "did you mean 'matmult'?",
        id="neuron-auto-cast-spelling",
    ),
]


@pytest.mark.parametrize(("table", "path", "fragments", "hint"), ERROR_CASES)
def test_invalid_table(table: Any, path: str, fragments: list[str], hint: str | None) -> None:
    err = error(table)
    assert err.path == path
    for fragment in fragments:
        assert fragment in err.message
    assert err.hint == hint


@pytest.mark.parametrize("factory", ["nocolon", "a:", ":b", "a b:c", "a:b:c", "1mod:make", "pkg.:make", ""])
def test_malformed_factory(factory: str) -> None:
    err = error(with_model(factory=factory))
    assert err.path == f"{ENC}.factory"
    assert err.message.startswith(f"{factory!r} is not 'module:attribute'")
    assert "for example 'mypkg.nets:make_encoder'" in err.message


@pytest.mark.parametrize("factory", ["pkg:make", "pkg.nets:make_enc", "_p.n2:Cls.build"])
def test_wellformed_factory(factory: str) -> None:
    assert settings_from_table(with_model(factory=factory), {}).models["enc"].factory == factory


@pytest.mark.parametrize("name", ["1enc", "my-model", "class", "_private", "", "en c"])
def test_model_name_not_identifier(name: str) -> None:
    table = {"models": {name: minimal()["models"]["enc"]}}
    err = error(table)
    assert err.path == f"tool.neuron.models.{name}"
    assert err.message == (
        f"{name!r} is not a public Python identifier (letters, digits, '_'; not a keyword; no leading '_')"
    )


def test_unknown_key_error_comes_before_missing_key() -> None:
    """A typo of a required key reports the typo (with the fix), not the missing key."""
    table = with_model(factory=DROP, fatcory="pkg:make")
    err = error(table)
    assert (err.path, err.hint) == (f"{ENC}.fatcory", "did you mean 'factory'?")


def test_error_is_a_value_error_with_location() -> None:
    err = error(with_input(dtpye="int64"))
    assert isinstance(err, ValueError)
    located = err.in_file("/x/pyproject.toml")
    assert located.file == "/x/pyproject.toml"
    assert (located.path, located.message, located.hint) == (err.path, err.message, err.hint)
    assert str(located) == f"/x/pyproject.toml: {err}"


def test_validation_does_not_mutate_table() -> None:
    table = minimal(targets=["neuron"])
    before = copy.deepcopy(table)
    settings_from_table(table, {"HATCH_NEURON_TARGETS": "cpu", "HATCH_NEURON_TIMEOUT": "5"})
    assert table == before


def test_config_errors_do_not_import_torch() -> None:
    """Every configuration error is raised before anything is imported or traced."""
    code = textwrap.dedent(
        """
        import sys
        from hatch_neuron.config import ConfigError, settings_from_table
        table = {"models": {"enc": {"factory": "nocolon", "inputs": [{"shape": [1]}]}}}
        try:
            settings_from_table(table, {})
        except ConfigError:
            pass
        else:
            raise SystemExit("no error")
        settings_from_table({"models": {"enc": {"factory": "a:b", "inputs": [{"shape": [1]}]}}}, {})
        assert "torch" not in sys.modules, "config layer imported torch"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- environment overrides


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cpu", ["cpu"]),
        ("neuron", ["neuron"]),
        ("cpu,neuron", ["cpu", "neuron"]),
        ("neuron,cpu", ["neuron", "cpu"]),
        (" cpu , neuron ", ["cpu", "neuron"]),
        ("cpu,", ["cpu"]),
        ("", ["neuron", "cpu"]),
        ("   ", ["neuron", "cpu"]),
    ],
)
def test_env_targets_replace_table(value: str, expected: list[str]) -> None:
    table = minimal(targets=["neuron", "cpu"])
    assert settings_from_table(table, {"HATCH_NEURON_TARGETS": value}).targets == expected


def test_env_targets_override_default() -> None:
    assert settings_from_table(minimal(), {"HATCH_NEURON_TARGETS": "cpu"}).targets == ["cpu"]


@pytest.mark.parametrize(
    ("value", "bad", "hint"),
    [
        ("cpu,gpu", "gpu", "did you mean 'cpu'?"),
        ("cpux", "cpux", "did you mean 'cpu'?"),
        ("tpu9000", "tpu9000", None),
    ],
)
def test_env_targets_unknown(value: str, bad: str, hint: str | None) -> None:
    err = error(minimal(), {"HATCH_NEURON_TARGETS": value})
    assert err.path == "HATCH_NEURON_TARGETS"
    assert err.message == f"unknown target {bad!r}; allowed: neuron, xla, inductor, cpu"
    assert err.hint == hint
    assert str(err).startswith("HATCH_NEURON_TARGETS: ")


@pytest.mark.parametrize(
    ("value", "expected"), [("120", 120.0), (" 7.5 ", 7.5), ("1e3", 1000.0), ("", 3600.0)]
)
def test_env_timeout(value: str, expected: float) -> None:
    assert settings_from_table(minimal(), {"HATCH_NEURON_TIMEOUT": value}).timeout == expected


@pytest.mark.parametrize("value", ["abc", "10s", "1,5"])
def test_env_timeout_not_a_number(value: str) -> None:
    err = error(minimal(timeout=60), {"HATCH_NEURON_TIMEOUT": value})
    assert err.path == "HATCH_NEURON_TIMEOUT"
    assert err.message == f"expected a positive number of seconds, got {value!r}"


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATCH_NEURON_TARGETS", "cpu")
    monkeypatch.setenv("HATCH_NEURON_TIMEOUT", "42")
    settings = settings_from_table(minimal())
    assert (settings.targets, settings.timeout) == (["cpu"], 42.0)


# --- load_settings on real files


def test_load_settings_error_names_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [project]
        name = "demo"

        [tool.neuron.models.enc]
        factory = "demo.nets:make"
        inputs = [{ shape = [1, 8], dtype = "in64" }]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    err = info.value
    assert err.file == str(path)
    assert err.path == f"{IN0}.dtype"
    assert str(err).startswith(f"{path}: {IN0}.dtype: string 'in64' is not allowed; {ALLOWED_DTYPES}")
    assert str(err).endswith("(did you mean 'int64'?)")


def test_load_settings_env_error_names_file_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[tool.neuron.models.enc]\nfactory = "a:b"\ninputs = [{ shape = [1] }]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, {"HATCH_NEURON_TARGETS": "gpu"})
    assert str(info.value).startswith(f"{path}: HATCH_NEURON_TARGETS: unknown target 'gpu'")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            """
            [tool.neuron.models.enc]
            factory = "a:b"
            inputs = [{ shape = [1] }]

            [tool.neuron.models.enc]
            factory = "a:c"
            inputs = [{ shape = [2] }]
            """,
            id="table-twice",
        ),
        pytest.param(
            """
            [tool.neuron.models.enc]
            factory = "a:b"
            factory = "a:c"
            inputs = [{ shape = [1] }]
            """,
            id="key-twice",
        ),
    ],
)
def test_load_settings_duplicate_toml(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    err = info.value
    assert err.file == str(path)
    assert err.message.startswith("invalid TOML: ")
    assert str(err).startswith(f"{path}: ")
    assert "line" in err.message  # tomllib locates the duplicate


@pytest.mark.parametrize(
    "body",
    ['[project]\nname = "demo"\n', "[tool.black]\nline-length = 100\n", ""],
    ids=["no-tool", "other-tool", "empty"],
)
def test_load_settings_missing_neuron_table(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    err = info.value
    assert (err.path, err.file) == ("tool.neuron", str(path))
    assert "missing table" in err.message
    assert "[tool.neuron.models.<name>]" in err.message
    assert str(err).startswith(f"{path}: tool.neuron: missing table")


def test_load_settings_empty_neuron_table(tmp_path: Path) -> None:
    path = write(tmp_path, "[tool.neuron]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value) == f"{path}: tool.neuron.models: missing required key (expected a table)"


# --- happy path


def test_example_project_parses() -> None:
    settings = load_settings(EXAMPLE, {})
    assert settings.targets == ["neuron", "cpu"]
    assert settings.module == "compiled"
    assert settings.package == "example_models"
    assert settings.compiler_args == ["--optlevel", "2"]
    assert settings.neuron_target == "inf2"
    assert settings.load == "import"
    assert settings.timeout == 3600.0
    assert list(settings.models) == ["scale_add", "conv", "classifier", "encoder"]
    assert settings.models["scale_add"] == ModelSettings(
        factory="example_models.nets:make_scale_add",
        inputs=[InputSpec(shape=[3], dtype="float32"), InputSpec(shape=[3], dtype="float32")],
    )
    assert settings.models["conv"].inputs == [InputSpec(shape=[1, 1, 3, 3])]
    assert settings.models["classifier"].inputs[0].shape == [1, 3, 32, 32]
    encoder = settings.models["encoder"]
    assert encoder.factory == "example_models.nets:make_encoder"
    assert [i.bounds() for i in encoder.inputs] == [(0, 1000), (0, 2)]
    assert [i.dtype for i in encoder.inputs] == ["int64", "int64"]
    assert (encoder.rtol, encoder.atol) == (1e-3, 1e-4)


def test_example_project_env_overrides() -> None:
    settings = load_settings(EXAMPLE, {"HATCH_NEURON_TARGETS": "cpu", "HATCH_NEURON_TIMEOUT": "90"})
    assert (settings.targets, settings.timeout) == (["cpu"], 90.0)


def test_defaults_are_filled() -> None:
    settings = settings_from_table(minimal(), {})
    assert isinstance(settings, NeuronSettings)
    assert settings.targets == ["neuron"]
    assert settings.module == "compiled"
    assert settings.load == "import"
    assert settings.package is None
    assert settings.compiler_args == []
    assert settings.neuron_target is None
    assert settings.timeout == 3600.0
    model = settings.models["enc"]
    assert (model.rtol, model.atol) == (None, None)
    (spec,) = model.inputs
    assert spec == InputSpec(shape=[1, 4], dtype="float32", low=None, high=None)
    assert spec.bounds() == (None, None)


def test_every_option_set() -> None:
    table = minimal(
        targets=["cpu"],
        module="models_out",
        package="demo.sub",
        compiler_args=["--auto-cast", "none"],
        neuron_target="trn1n",
        load="lazy",
        timeout=30,
    )
    settings = settings_from_table(table, {})
    assert settings.targets == ["cpu"]
    assert (settings.module, settings.package, settings.load) == ("models_out", "demo.sub", "lazy")
    assert settings.compiler_args == ["--auto-cast", "none"]
    assert settings.neuron_target == "trn1n"
    assert settings.timeout == 30.0 and isinstance(settings.timeout, float)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_accepted(dtype: str) -> None:
    spec = settings_from_table(with_input(dtype=dtype), {}).models["enc"].inputs[0]
    assert spec.dtype == dtype


@pytest.mark.parametrize(
    ("keys", "bounds"),
    [
        ({"dtype": "int64"}, (0, 2)),
        ({"dtype": "int8", "high": 100}, (0, 100)),
        ({"dtype": "int32", "low": -5}, (-5, 2)),
        ({"dtype": "int16", "low": 3, "high": 7}, (3, 7)),
        ({"dtype": "float32", "low": -1.0, "high": 1.0}, (-1.0, 1.0)),
        ({"dtype": "float64"}, (None, None)),
        ({"dtype": "bool"}, (None, None)),
    ],
)
def test_bounds(keys: dict[str, Any], bounds: tuple[Any, Any]) -> None:
    spec = settings_from_table(with_input(**keys), {}).models["enc"].inputs[0]
    assert spec.bounds() == bounds


def test_input_spec_bounds_default_directly() -> None:
    assert InputSpec(shape=[1], dtype="int64").bounds() == (0, 2)


def test_models_keep_declaration_order() -> None:
    enc = minimal()["models"]["enc"]
    settings = settings_from_table({"models": {"zeta": enc, "alpha": enc, "mid": enc}}, {})
    assert list(settings.models) == ["zeta", "alpha", "mid"]


# --- field docstrings (the README reference is generated from them)


def _class_fields(tree: ast.Module, name: str) -> dict[str, str | None]:
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    found: dict[str, str | None] = {}
    for i, node in enumerate(cls.body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            nxt = cls.body[i + 1] if i + 1 < len(cls.body) else None
            doc = (
                nxt.value.value
                if isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
                else None
            )
            found[node.target.id] = doc
    return found


@pytest.mark.parametrize("cls", [InputSpec, ModelSettings, NeuronSettings], ids=lambda c: c.__name__)
def test_every_field_has_docstring(cls: type) -> None:
    tree = ast.parse(Path(model_module.__file__).read_text(encoding="utf-8"))
    found = _class_fields(tree, cls.__name__)
    assert set(found) == {f.name for f in dataclasses.fields(cls)}
    missing = [name for name, doc in found.items() if not (doc and doc.strip())]
    assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


# --- regressions: bugs found while writing these tests, since fixed


def test_bool_high_only_reported_at_high() -> None:
    err = error(with_input(dtype="bool", high=1))
    assert err.path == f"{IN0}.high"


@pytest.mark.parametrize("bound", [float("inf"), float("-inf"), float("nan")])
def test_int_bound_not_finite(bound: float) -> None:
    err = error(with_input(dtype="int64", low=bound, high=4))
    assert err.path == f"{IN0}.low"


@pytest.mark.parametrize(
    ("table", "environ", "path"),
    [
        (with_model(rtol=float("nan")), {}, f"{ENC}.rtol"),
        (with_model(atol=float("nan")), {}, f"{ENC}.atol"),
        (minimal(timeout=float("nan")), {}, "tool.neuron.timeout"),
        (minimal(), {"HATCH_NEURON_TIMEOUT": "nan"}, "HATCH_NEURON_TIMEOUT"),
    ],
    ids=["rtol", "atol", "timeout", "env-timeout"],
)
def test_nan_rejected(table: dict[str, Any], environ: dict[str, str], path: str) -> None:
    assert error(table, environ).path == path


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"HATCH_NEURON_TARGETS": "cpu,cpu"}, "HATCH_NEURON_TARGETS"),
        ({"HATCH_NEURON_TARGETS": ","}, "HATCH_NEURON_TARGETS"),
        ({"HATCH_NEURON_TIMEOUT": "0"}, "HATCH_NEURON_TIMEOUT"),
        ({"HATCH_NEURON_TIMEOUT": "-1"}, "HATCH_NEURON_TIMEOUT"),
    ],
    ids=["targets-twice", "targets-empty", "timeout-zero", "timeout-negative"],
)
def test_env_override_errors_name_variable(environ: dict[str, str], variable: str) -> None:
    assert variable in str(error(minimal(), environ))


def test_remote_cache_settings_and_overrides() -> None:
    settings = settings_from_table(
        minimal(**{"remote-cache": "s3://b/p", "remote-cache-mode": "read-only"}), {}
    )
    assert (settings.remote_cache, settings.remote_cache_mode, settings.remote_cache_timeout) == (
        "s3://b/p",
        "read-only",
        10.0,
    )
    env = {"HATCH_NEURON_REMOTE_CACHE": "s3://other/x", "HATCH_NEURON_REMOTE_CACHE_MODE": "off"}
    overridden = settings_from_table(minimal(**{"remote-cache": "s3://b/p"}), env)
    assert (overridden.remote_cache, overridden.remote_cache_mode) == ("s3://other/x", "off")
    assert (
        settings_from_table(
            minimal(**{"remote-cache": "s3://b/p"}), {"HATCH_NEURON_REMOTE_CACHE": ""}
        ).remote_cache
        is None
    )
    assert "tool.neuron.remote-cache" in str(error(minimal(**{"remote-cache": "bucket/prefix"})))
    assert "tool.neuron.remote-cache-timeout" in str(error(minimal(**{"remote-cache-timeout": 0})))
    assert "HATCH_NEURON_REMOTE_CACHE_MODE" in str(error(minimal(), {"HATCH_NEURON_REMOTE_CACHE_MODE": "rw"}))
    assert "HATCH_NEURON_REMOTE_CACHE" in str(error(minimal(), {"HATCH_NEURON_REMOTE_CACHE": "not-a-url"}))


def test_model_overrides() -> None:
    """targets, compiler-args, check and timeout in a model's table replace the project's for that model."""
    table = minimal(targets=["neuron", "inductor"], compiler_args=["--optlevel", "2"])
    table["models"]["swin"] = {
        **table["models"]["enc"],
        "targets": ["cpu"],
        "compiler-args": ["--model-type", "transformer"],
        "check": "warn",
        "timeout": 60,
    }
    settings = settings_from_table(table, {})
    swin, enc = settings.models["swin"], settings.models["enc"]
    assert (swin.targets, swin.compiler_args, swin.check, swin.timeout) == (
        ["cpu"],
        ["--model-type", "transformer"],
        "warn",
        60.0,
    )
    assert (enc.targets, enc.compiler_args, enc.check, enc.timeout) == (None, None, None, None)
    overridden = settings_from_table(table, {"HATCH_NEURON_TARGETS": "cpu", "HATCH_NEURON_TIMEOUT": "5"})
    assert overridden.targets == ["cpu"] and overridden.models["swin"].targets is None
    assert overridden.timeout == 5.0 and overridden.models["swin"].timeout is None


@pytest.mark.parametrize(
    ("override", "path", "fragment"),
    [
        ({"targets": []}, "targets", "list at least one target"),
        ({"targets": ["cpu", "cpu"]}, "targets", "a target is listed twice"),
        ({"targets": ["gpu"]}, "targets[0]", "'gpu' is not allowed; allowed: neuron, xla, inductor, cpu"),
        ({"check": "strict"}, "check", "allowed: error, warn, off"),
        ({"timeout": 0}, "timeout", "must be > 0 seconds"),
        ({"compiler-args": "--optlevel 2"}, "compiler-args", "expected an array"),
    ],
)
def test_bad_model_overrides(override: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_table(with_model(**override), {})
    assert info.value.path == f"{ENC}.{path}" and fragment in str(info.value)


def test_inductor_configs() -> None:
    table = minimal(inductor_configs={"freezing": True, "cpp.weight_prepack": False, "max_fusion_size": 64})
    assert settings_from_table(table, {}).inductor_configs == {
        "freezing": True,
        "cpp.weight_prepack": False,
        "max_fusion_size": 64,
    }
    assert settings_from_table(minimal(), {}).inductor_configs == {}
    reserved = error(minimal(inductor_configs={"cpp.march": "native"}))
    assert reserved.path == "tool.neuron.inductor-configs" and "set by hatch-neuron" in reserved.message
    assert "not an Inductor setting name" in error(minimal(inductor_configs={"bad name": 1})).message
    nested = error(minimal(inductor_configs={"cpp": {"weight_prepack": False}}))  # an unquoted dotted key
    assert nested.path == "tool.neuron.inductor-configs.cpp"


def test_every_build_variable_comes_from_the_settings_model() -> None:
    """Each setting with a build variable takes it, and a wrong value is an error naming the variable,
    from the same checks as its TOML value (validate() runs again on the result)."""
    from hatch_neuron.config.model import env_override

    variables = {
        f.name: o.variable
        for f in dataclasses.fields(NeuronSettings)
        if (o := env_override(f)) and o.when == "build"
    }
    assert variables["remote_cache_timeout"] == "HATCH_NEURON_REMOTE_CACHE_TIMEOUT"  # no longer missing
    good = {
        "HATCH_NEURON_REMOTE_CACHE_TIMEOUT": "2.5",
        "HATCH_NEURON_JOBS": "3",
        "HATCH_NEURON_WORKERS": "fresh",
    }
    settings = settings_from_table(minimal(), good)
    assert (settings.remote_cache_timeout, settings.jobs, settings.workers) == (2.5, 3, "fresh")
    bad = {
        "HATCH_NEURON_REMOTE_CACHE_TIMEOUT": "0",  # validate(): must be > 0 seconds
        "HATCH_NEURON_JOBS": "0",  # validate(): must be >= 1
        "HATCH_NEURON_WORKERS": "forked",  # the Literal's own check
        "HATCH_NEURON_CACHE": "maybe",
        "HATCH_NEURON_TIMEOUT": "inf",  # convert(): finite numbers only
    }
    for variable, value in bad.items():
        err = error(minimal(), {variable: value})
        assert err.path == variable, (variable, str(err))
    assert error(minimal(), {"HATCH_NEURON_JOBS": "0"}).message == "must be >= 1, got 0"
    assert error(minimal(), {"HATCH_NEURON_WORKERS": "forked"}).message == (
        "string 'forked' is not allowed; allowed: preloaded, fresh"
    )


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [project]
        name = "demo"

        [tool.neuron]
        targets = ["cpux"]
        jobz = 2

        [tool.neuron.models.enc]
        factory = "pkg.nets:make"
        inputs = [{ shape = [1, 4], dtype = "float33" }, { shape = [0] }]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "tool.neuron.jobz",  # unknown keys first, then the settings in their order
        "tool.neuron.models.enc.inputs[0].dtype",
        "tool.neuron.models.enc.inputs[1].shape",
        "tool.neuron.targets[0]",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert [p.path for p in info.value.problems] == [line.split(": ")[1] for line in lines]


@pytest.mark.parametrize(
    ("args", "found"),
    [
        (["--optlevel", "3"], {"optlevel": "3"}),
        (["--optlevel=1", "--auto-cast", "all"], {"optlevel": "1", "auto-cast": "all"}),
        (["-O2", "--model-type=transformer"], {"optlevel": "2", "model-type": "transformer"}),
        (["-O", "3", "--auto-cast-type", "fp16"], {"optlevel": "3", "auto-cast-type": "fp16"}),
        (["--target", "inf2", "--verbose", "info"], {}),
        (["-O", "--auto-cast", "all"], {"optlevel": "", "auto-cast": "all"}),
        (["--optlevel", "03"], {"optlevel": "3"}),
    ],
)
def test_raw_flags_read_as_typed_options(args: list[str], found: dict[str, str]) -> None:
    """neuronx-cc's spellings (CLI reference: ``--optlevel N``, ``-O N``, ``-ON``, ``--flag=value``)."""
    assert raw_flag_values(args) == found
