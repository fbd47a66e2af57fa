"""A failed build fails cleanly: non-zero exit, a message that names the model and the cause, no wheel,
no leftover temporary folders and no leftover processes. Every build here is a real
``pip wheel --no-build-isolation`` of a small project made in ``tmp_path``."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import clean_env, install, make_project, pip_wheel, run_python, single_wheel

INPUT_4 = '[{ shape = [4], dtype = "float32" }]'


def neuron_toml(
    models: dict[str, str | tuple[str, str]], *, extra: str = "", targets: str = '["cpu"]'
) -> str:
    """``[tool.neuron]`` with one model table per ``name -> factory`` or ``name -> (factory, inputs)``."""
    text = f"[tool.neuron]\ntargets = {targets}\n{extra}\n"
    for name, model in models.items():
        factory, inputs = (model, INPUT_4) if isinstance(model, str) else model
        text += f'\n[tool.neuron.models.{name}]\nfactory = "{factory}"\ninputs = {inputs}\n'
    return text


def leftovers(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.glob("hatch-neuron-*"))


def build(tmp_path: Path, nets: str, toml: str, **env: str) -> tuple[int, str, Path, float]:
    """Build the project into ``tmp_path/out`` with ``TMPDIR`` set to a fresh ``tmp_path/tmp``; return
    (exit code, stdout + stderr, out folder, seconds), after checking no hatch-neuron-* temp is left."""
    project = make_project(tmp_path / "proj", nets, toml)
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    tmpdir.mkdir()
    start = time.monotonic()
    result = pip_wheel(project, out, env=clean_env(TMPDIR=str(tmpdir), **env), check=False)
    seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    assert leftovers(tmpdir) == [], output[-4000:]
    return result.returncode, output, out, seconds


def build_fails(tmp_path: Path, nets: str, toml: str, **env: str) -> str:
    """Build, expect failure and no wheel; return the combined output."""
    code, output, out, _ = build(tmp_path, nets, toml, **env)
    assert code != 0, output[-4000:]
    assert list(out.glob("*.whl")) == []
    return output


def assert_mentions(output: str, *parts: str) -> None:
    missing = [p for p in parts if p not in output]
    assert not missing, f"missing {missing} in build output:\n{output[-6000:]}"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as dead: init may not reap it here)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# 1. The factory kills its process hard.

CRASHES = {
    "abort": ("os.abort()", "exit code -6"),
    "exit": ("os._exit(3)", "exit code 3"),
    "segfault": ("ctypes.string_at(0)", "exit code -11"),
}


@pytest.mark.parametrize("how", list(CRASHES))
def test_factory_crash(tmp_path: Path, how: str) -> None:
    statement, exit_code = CRASHES[how]
    nets = f"""
        import ctypes, os
        def make():
            print("about to crash", flush=True)
            {statement}
    """
    output = build_fails(tmp_path, nets, neuron_toml({"boom": "demo_pkg.nets:make"}))
    assert_mentions(
        output,
        "model 'boom'",
        "the compile process died",
        exit_code,
        "crashed",
        "about to crash",  # the child's last output is shown
    )


# 2. The factory hangs: the timeout stops it, and everything it started.

HANG_NETS = """
    import os, subprocess, sys, time
    from pathlib import Path
    def make():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path({pid_file!r}).write_text(f"{{os.getpid()}} {{child.pid}}")
        print("hanging now", flush=True)
        time.sleep(600)
"""


@pytest.mark.parametrize("where", ["pyproject", "env"])
def test_factory_hang_times_out(tmp_path: Path, where: str) -> None:
    pid_file = tmp_path / "pids"
    nets = HANG_NETS.format(pid_file=str(pid_file))
    extra, env = ("timeout = 5", {}) if where == "pyproject" else ("", {"HATCH_NEURON_TIMEOUT": "5"})
    toml = neuron_toml({"sleepy": "demo_pkg.nets:make"}, extra=extra)
    code, output, out, seconds = build(tmp_path, nets, toml, **env)
    assert code != 0, output[-4000:]
    assert list(out.glob("*.whl")) == []
    assert seconds < 120, seconds
    assert_mentions(output, "model 'sleepy'", "took longer than 5 s", "hanging now")
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in pids if alive(pid)] == [], "the hung worker or its child is still running"


def test_factory_hang_with_detached_child_times_out(tmp_path: Path) -> None:
    nets = """
        import subprocess, sys, time
        def make():
            # A helper in its own session (a server, a compiler daemon) inherits the worker's stdout.
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(25)"], start_new_session=True)
            time.sleep(600)
    """
    toml = neuron_toml({"sleepy": "demo_pkg.nets:make"}, extra="timeout = 5")
    code, output, out, seconds = build(tmp_path, nets, toml)
    assert code != 0 and list(out.glob("*.whl")) == []
    assert_mentions(output, "model 'sleepy'", "took longer than 5 s")
    assert seconds < 20, f"the build waited {seconds:.0f} s for the detached helper to exit"


def test_interrupted_build_leaves_no_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    project = make_project(
        tmp_path / "proj",
        HANG_NETS.format(pid_file=str(pid_file)),
        neuron_toml({"sleepy": "demo_pkg.nets:make"}),
    )
    cmd = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
    pip = subprocess.Popen(
        [*cmd, "-w", str(tmp_path / "out"), str(project)],
        env=clean_env(PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a shell job that gets Ctrl-C
        # Ctrl-C's default action, also where the tests run in a shell's background (which ignores SIGINT,
        # and an ignored signal stays ignored across exec)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and pip.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.exists(), pip.communicate()[0][-4000:]
        time.sleep(0.5)
        pids = [int(p) for p in pid_file.read_text().split()]
        os.killpg(pip.pid, signal.SIGINT)  # Ctrl-C in the terminal that runs pip
        try:
            output = pip.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:  # where does it hang: faulthandler prints every thread on SIGABRT
            os.killpg(pip.pid, signal.SIGABRT)
            tail = pip.communicate(timeout=30)[0][-8000:]
            raise AssertionError(f"the build did not end after Ctrl-C:\n{tail}") from None
        assert pip.returncode != 0, output[-4000:]
        assert list((tmp_path / "out").glob("*.whl")) == []
        time.sleep(1)
        assert [pid for pid in pids if alive(pid)] == [], "the worker outlived the interrupted build"
    finally:
        if pip.poll() is None:
            os.killpg(pip.pid, signal.SIGKILL)
            pip.wait()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# 3. The factory raises.

RAISING_NETS = """
    def make_broken():
        raise RuntimeError("weights missing")
"""


def test_factory_raises(tmp_path: Path) -> None:
    output = build_fails(tmp_path, RAISING_NETS, neuron_toml({"enc": "demo_pkg.nets:make_broken"}))
    assert_mentions(
        output,
        "model 'enc'",
        "RuntimeError: weights missing",
        "in make_broken",  # the user's traceback, down to the factory
        str(Path("demo_pkg", "nets.py")),
    )


def test_factory_raises_message_names_factory_spec(tmp_path: Path) -> None:
    output = build_fails(tmp_path, RAISING_NETS, neuron_toml({"enc": "demo_pkg.nets:make_broken"}))
    assert_mentions(output, "model 'enc'", "demo_pkg.nets:make_broken", "weights missing")


def test_factory_failing_assert_is_explained(tmp_path: Path) -> None:
    nets = """
        def make_checked():
            assert 1 == 2
    """
    output = build_fails(tmp_path, nets, neuron_toml({"enc": "demo_pkg.nets:make_checked"}))
    assert_mentions(output, "model 'enc'", "AssertionError", "in make_checked")


# 4. The factory cannot be imported or gives something unusable.

IMPORT_CASES = {
    "missing-module": (
        "demo_pkg.missing:make",
        "",
        ["'demo_pkg.missing:make'", "No module named 'demo_pkg.missing'"],
    ),
    "module-import-fails": (
        "demo_pkg.nets:make",
        "import no_such_dependency_xyz\ndef make(): pass\n",
        ["'demo_pkg.nets:make'", "importing 'demo_pkg.nets' failed", "no_such_dependency_xyz"],
    ),
    "missing-attribute": (
        "demo_pkg.nets:nope",
        "def make(): pass\n",
        ["'demo_pkg.nets:nope'", "has no attribute 'nope'"],
    ),
    "not-callable": (
        "demo_pkg.nets:VALUE",
        "VALUE = 42\n",
        ["'demo_pkg.nets:VALUE'", "is a int, not a callable"],
    ),
    "returns-number": (
        "demo_pkg.nets:make",
        "def make():\n    return 42\n",
        ["'demo_pkg.nets:make'", "returned a int", "expected an nn.Module or a function"],
    ),
}


@pytest.mark.parametrize("case", list(IMPORT_CASES))
def test_factory_import_errors(tmp_path: Path, case: str) -> None:
    factory, nets, parts = IMPORT_CASES[case]
    output = build_fails(tmp_path, nets, neuron_toml({"enc": factory}))
    assert_mentions(output, "model 'enc'", *parts)


# 5. The traced graph differs from eager on the second input set.


@pytest.mark.quick
def test_verification_mismatch(tmp_path: Path) -> None:
    from hatch_neuron.compile.inputs import CHECK_SEED, TRACE_SEED, make_inputs

    spec = [{"shape": [4], "dtype": "float32", "low": None, "high": None}]
    (traced_on,), (checked_on,) = make_inputs(spec, TRACE_SEED), make_inputs(spec, CHECK_SEED)
    assert bool(traced_on.sum() > 0) != bool(checked_on.sum() > 0), "the two input sets take one branch"
    nets = """
        def branchy(x):
            if x.sum() > 0:
                return x * 2
            return x * -3
        def make():
            return branchy
    """
    # check = "off": the pre-flight checks would catch this first (tests/test_checks.py); here the
    # build-time verification against eager must
    output = build_fails(
        tmp_path, nets, neuron_toml({"branchy": "demo_pkg.nets:make"}, extra='check = "off"')
    )
    assert_mentions(
        output,
        "model 'branchy'",
        "second input set, seed 1",
        "differs from eager",
        "max abs error",
        "data-dependent control flow",
    )


# 6. Configuration errors fail before any factory runs.


def marker_nets(marker: Path) -> str:
    """A factory that leaves ``marker`` behind when it is called."""
    return f"""
        from pathlib import Path
        def make():
            Path({str(marker)!r}).write_text("called")
            return lambda x: x * 2
    """


def test_bad_config_fails_before_tracing(tmp_path: Path) -> None:
    marker = tmp_path / "factory-called"
    nets = marker_nets(marker)
    toml = neuron_toml({"enc": ("demo_pkg.nets:make", '[{ shape = [4], dtype = "float" }]')})
    output = build_fails(tmp_path, nets, toml)
    pyproject = tmp_path / "proj" / "pyproject.toml"
    assert str(pyproject) in output or str(pyproject.resolve()) in output, output[-4000:]
    assert_mentions(output, "tool.neuron.models.enc.inputs[0].dtype", "'float'", "float32")
    assert not marker.exists()


# 7. Target neuron without torch_neuronx: fails fast with what to install.


def test_neuron_target_without_torch_neuronx(tmp_path: Path) -> None:
    marker = tmp_path / "factory-called"
    nets = marker_nets(marker)
    toml = neuron_toml({"enc": "demo_pkg.nets:make"}, targets='["neuron"]')
    env = clean_env()
    assert "PYTHONPATH" not in env  # so the torch_neuronx test double is not importable
    output = build_fails(tmp_path, nets, toml)
    assert_mentions(output, "pip install torch-neuronx", "HATCH_NEURON_TARGETS=cpu")
    assert not marker.exists()


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla is installed here")
def test_xla_target_without_torch_xla(tmp_path: Path) -> None:
    marker = tmp_path / "factory-called"
    toml = neuron_toml({"enc": "demo_pkg.nets:make"}, targets='["xla", "cpu"]')
    output = build_fails(tmp_path, marker_nets(marker), toml)
    assert_mentions(output, "target 'xla' needs torch-xla", "pip install 'hatch-neuron[xla]'")
    assert not marker.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_inductor_cuda_without_a_gpu(tmp_path: Path) -> None:
    marker = tmp_path / "factory-called"
    toml = neuron_toml(
        {"enc": "demo_pkg.nets:make"}, targets='["inductor"]', extra='inductor-device = "cuda"'
    )
    output = build_fails(tmp_path, marker_nets(marker), toml)
    assert_mentions(
        output, 'inductor-device = "cuda" compiles on the build host\'s GPU', "is_available() is False"
    )
    assert not marker.exists()


# 8. A factory's side effects stay in its own process.

LEAKY_NETS = """
    import os
    import torch

    def double(x):
        return x * 2

    def add(x, y):
        return x + y

    def make_patcher():
        os.environ["DEMO_LEAKED"] = "1"
        torch.Tensor.__add__ = lambda a, b: torch.sub(a, b)
        return double

    def make_adder():
        if "DEMO_LEAKED" in os.environ:
            raise RuntimeError("os.environ leaked from another factory")
        if (torch.ones(1) + torch.ones(1)).item() != 2:
            raise RuntimeError("torch.Tensor.__add__ leaked from another factory")
        return add
"""


def test_factory_side_effects_do_not_leak(tmp_path: Path) -> None:
    two_inputs = '[{ shape = [4], dtype = "float32" }, { shape = [4], dtype = "float32" }]'
    models = {"patcher": "demo_pkg.nets:make_patcher", "adder": ("demo_pkg.nets:make_adder", two_inputs)}
    toml = neuron_toml(models)  # patcher is compiled first, in the same build
    code, output, out, _ = build(tmp_path, LEAKY_NETS, toml)
    assert code == 0, output[-6000:]
    site = install(single_wheel(out), tmp_path / "site")
    result = run_python(
        """
        import torch
        from demo_pkg.compiled import adder, patcher
        x, y = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([10.0, 20.0, 30.0, 40.0])
        assert torch.equal(adder(x, y), x + y), adder(x, y)
        assert torch.equal(patcher(x), x * 2), patcher(x)
        print("ok")
        """,
        site,
    )
    assert result.stdout.strip().splitlines()[-1] == "ok"


# 9. No hatch-neuron temp folders are left behind after a failure midway.


def test_no_temp_folders_left_after_failure(tmp_path: Path) -> None:
    cwd_file = tmp_path / "worker-cwd"
    nets = f"""
        import os
        from pathlib import Path
        def make_ok():
            return lambda x: x + 1
        def make_crash():
            Path({str(cwd_file)!r}).write_text(os.getcwd())  # the worker runs in its temp folder
            os._exit(3)
    """
    toml = neuron_toml({"first": "demo_pkg.nets:make_ok", "second": "demo_pkg.nets:make_crash"})
    # one job at a time: the first model is compiled into the staging folder before the second one crashes
    output = build_fails(tmp_path, nets, toml, HATCH_NEURON_JOBS="1")  # checks TMPDIR holds no hatch-neuron-*
    assert_mentions(output, "first [cpu]: compiled", "model 'second'", "the compile process died")
    worker_tmp = Path(cwd_file.read_text())
    assert worker_tmp.parent.resolve() == (tmp_path / "tmp").resolve()  # TMPDIR reached the build
    assert worker_tmp.name.startswith("hatch-neuron-second-")
    assert not worker_tmp.exists()
    assert leftovers(tmp_path / "tmp") == []


# 10. With parallel jobs, the first failure stops the others.


def test_failing_job_stops_the_others(tmp_path: Path) -> None:
    pid_file = tmp_path / "slow-pid"
    nets = f"""
        import os, time
        from pathlib import Path
        def make_slow():
            Path({str(pid_file)!r}).write_text(str(os.getpid()))
            time.sleep(300)
        def make_broken():
            while not Path({str(pid_file)!r}).exists():
                time.sleep(0.05)
            raise RuntimeError("broken on purpose")
    """
    toml = neuron_toml({"slow": "demo_pkg.nets:make_slow", "broken": "demo_pkg.nets:make_broken"})
    code, output, out, seconds = build(tmp_path, nets, toml, HATCH_NEURON_JOBS="2")
    assert code != 0 and list(out.glob("*.whl")) == []
    assert_mentions(output, "model 'broken'", "RuntimeError: broken on purpose")
    assert seconds < 120, seconds  # not the slow model's 300 s
    assert not alive(int(pid_file.read_text()))
