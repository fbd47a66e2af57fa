"""What a worker leaves behind and hands back (issue 12): its log is read back by its tail only, however
much the factory printed; every process it started ends with it, also those in a new session; and a
compiled output never aliases the artifact's frozen weights or buffers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import clean_env, install, make_project, pip_wheel, run_json, single_wheel

from hatch_neuron.compile.runner import read_tail

INPUT_4 = '[{ shape = [4], dtype = "float32" }]'


def neuron_toml(models: list[str], extra: str = "") -> str:
    text = f'[tool.neuron]\ntargets = ["cpu"]\ncheck = "off"\n{extra}\n'
    for name in models:
        text += f'\n[tool.neuron.models.{name}]\nfactory = "demo_pkg.nets:{name}"\ninputs = {INPUT_4}\n'
    return text


# 1. Bounded worker logs.


def test_read_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert read_tail(log) == ""  # never written
    log.write_bytes(b"one\ntwo\n")
    assert read_tail(log) == "one\ntwo\n"
    log.write_bytes(b"a" * 100 + b"\nkept \xff\nlast")
    assert read_tail(log, limit=20) == "kept \ufffd\nlast"  # the cut first line is dropped
    log.write_bytes(b"b" * 100)
    assert read_tail(log, limit=10) == "b" * 10  # one long line: its end


LOUD_NETS = """
    import os, sys
    import torch

    BLOCK = ("x" * 1023 + "\\n") * 1024  # 1 MiB

    def shout(last):
        for _ in range(300):
            sys.stdout.write(BLOCK)
        sys.stdout.write(last + "\\n")
        sys.stdout.flush()

    def raises():
        shout("last words before the error")
        raise RuntimeError("the factory gave up")

    def dies():
        shout("last words before the crash")
        os._exit(3)
"""

MEASURE = """
    import json, resource, sys
    from pathlib import Path
    from hatch_neuron.compile.runner import CompileError
    from hatch_neuron.package.pipeline import check

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    messages = {}
    before = peak()
    for model in ("raises", "dies"):
        try:
            check(Path.cwd(), None, [model])
        except CompileError as exc:
            messages[model] = str(exc)
    print(json.dumps({"before": before, "after": peak(), "messages": messages}))
"""


def test_huge_worker_output_is_read_back_by_its_tail(tmp_path: Path) -> None:
    """Each factory prints 300 MiB: the build process (here a Python that runs the workers the way a build
    does) grows by far less than that, and the messages are the usual ones with a short tail."""
    project = make_project(tmp_path / "proj", LOUD_NETS, neuron_toml(["raises", "dies"]))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    start = time.monotonic()
    report = run_json(MEASURE, project, env=clean_env(TMPDIR=str(tmpdir)))
    seconds = time.monotonic() - start
    assert isinstance(report, dict)
    raised, died = report["messages"]["raises"], report["messages"]["dies"]
    assert "model 'raises'" in raised and "RuntimeError: the factory gave up" in raised, raised[-2000:]
    assert "model 'dies'" in died and "the compile process died (exit code 3)" in died, died[-2000:]
    assert "Last output:\n" in died and died.endswith("last words before the crash"), died[-2000:]
    assert len(died) < 64 * 1024 and len(raised) < 64 * 1024
    grown = report["after"] - report["before"]
    assert grown < 48 * 2**20, f"the build process grew by {grown / 2**20:.0f} MiB reading the logs"
    assert list(tmpdir.iterdir()) == []  # the logs went with their workers' folders
    assert seconds < 60


# 2. Processes that leave the worker's session.

DETACHING_NETS = """
    import os, subprocess
    from pathlib import Path
    import torch

    HELPERS = []

    def detach():
        # a helper in its own session, the way subprocess starts one
        HELPERS.append(subprocess.Popen(["sleep", "300"], start_new_session=True))
        # a daemon: double fork, setsid in between, so that init adopts it
        read, write = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.setsid()
            daemon = os.fork()
            if daemon == 0:
                os.execvp("sleep", ["sleep", "301"])
            os.write(write, str(daemon).encode())
            os._exit(0)
        os.close(write)
        daemon = int(os.read(read, 64))
        os.waitpid(middle, 0)
        Path({pid_file!r}).write_text(f"{{HELPERS[0].pid}} {{daemon}}")

    class AddOne(torch.nn.Module):
        def forward(self, x):
            return x + 1

    def make():
        detach()
        return AddOne()

    def fail():
        detach()
        raise RuntimeError("no model today")
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs ``sleep`` (a zombie counts as dead: init may not reap it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return "(sleep)" in stat and stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("factory", ["make", "fail"])
def test_processes_in_a_new_session_end_with_the_worker(tmp_path: Path, factory: str) -> None:
    pid_file = tmp_path / "pids"
    toml = (
        neuron_toml([])
        + f'\n[tool.neuron.models.m]\nfactory = "demo_pkg.nets:{factory}"\ninputs = {INPUT_4}\n'
    )
    project = make_project(tmp_path / "proj", DETACHING_NETS.format(pid_file=str(pid_file)), toml)
    out = tmp_path / "out"
    result = pip_wheel(project, out, env=clean_env(), check=False)
    output = result.stdout + result.stderr
    pids = [int(p) for p in pid_file.read_text().split()]
    try:
        if factory == "make":
            assert result.returncode == 0, output[-4000:]
            single_wheel(out)
        else:
            assert result.returncode != 0 and "RuntimeError: no model today" in output, output[-4000:]
        assert len(pids) == 2
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in pids if alive(pid)] == [], "a detached helper outlived the build"
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# 3. Outputs that alias frozen state.

ALIASING_NETS = """
    import torch

    class Buffered(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.arange(4.0))
            self.p = torch.nn.Parameter(torch.full((4,), 3.0))

    class ReturnsBuffer(Buffered):
        def forward(self, x):
            return x + 1, self.w

    class ReturnsView(Buffered):
        def forward(self, x):
            return x * 2, self.w[0]

    class ReturnsParameter(Buffered):
        def forward(self, x):
            return {"y": x - 1, "p": self.p}

    class Fresh(Buffered):
        def forward(self, x):
            return x + self.w, x * self.p

    buffer, view, parameter, fresh = ReturnsBuffer, ReturnsView, ReturnsParameter, Fresh
"""

CALL_TWICE = """
    import json, torch
    import demo_pkg.compiled as compiled
    from demo_pkg import nets
    from hatch_neuron.runtime.pytree import flatten

    report = {}
    for name in ("buffer", "view", "parameter", "fresh"):
        eager = getattr(nets, name)().eval()
        x = torch.randn(4)
        with torch.no_grad():
            expected, _ = flatten(eager(x))
        first, _ = flatten(getattr(compiled, name)(x))
        for leaf in first:
            leaf.add_(1)  # the caller scribbles on what it got
        second, _ = flatten(getattr(compiled, name)(x))
        report[name] = all(torch.equal(a, b) for a, b in zip(expected, second, strict=True))
    print(json.dumps(report))
"""

EXPECTED_ALIASED = {"buffer": [1], "view": [1], "parameter": [1], "fresh": None}


def aliased_fields(wheel_install: Path) -> dict[str, object]:
    manifest = json.loads((wheel_install / "demo_pkg" / "_hatch_neuron" / "manifest.json").read_text())
    return {
        name: model["artifacts"]["cpu"][0].get("aliased_outputs")
        for name, model in manifest["models"].items()
    }


def test_outputs_never_alias_frozen_state(tmp_path: Path) -> None:
    """Built fresh, and again from a compile cache whose entries lack the field (made before it existed):
    the outputs that alias a frozen buffer or parameter are recorded and copied at run time; a model
    with fresh outputs only gets no field."""
    project = make_project(tmp_path / "proj", ALIASING_NETS, neuron_toml(list(EXPECTED_ALIASED)))
    cache_dir = tmp_path / "cache"
    env = clean_env(HATCH_NEURON_CACHE="verify", HATCH_NEURON_CACHE_DIR=str(cache_dir))
    for build in ("fresh", "cached"):
        out = tmp_path / f"out-{build}"
        result = pip_wheel(project, out, env=env)
        output = result.stdout + result.stderr
        if build == "cached":
            assert output.count("cached in") == len(EXPECTED_ALIASED), output[-4000:]
        site = install(single_wheel(out), tmp_path / f"site-{build}")
        assert aliased_fields(site) == EXPECTED_ALIASED
        assert run_json(CALL_TWICE, site) == {name: True for name in EXPECTED_ALIASED}
        for entry_file in cache_dir.glob("v1/artifacts/*/*/entry.json"):  # as an older build stored them
            entry = json.loads(entry_file.read_text())
            entry["facts"].pop("aliased_outputs", None)
            entry_file.write_text(json.dumps(entry))
