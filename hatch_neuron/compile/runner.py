"""Build-process side of compiling: run one worker process per model, with a timeout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..config import NeuronSettings
from ..plan import BuildPlan, ModelPlan
from . import TargetOptions, get_target


class CompileError(RuntimeError):
    """Compiling a model failed; the message names the model and the cause."""


def target_options(settings: NeuronSettings, model: ModelPlan | None = None) -> TargetOptions:
    """What the targets read of the settings (for ``model``'s jobs, or for pre-flight without one)."""
    return TargetOptions(
        settings.compiler_args,
        settings.neuron_target,
        dynamic_batch=model is not None and model.settings.dynamic_batch and len(model.buckets()) == 1,
        inductor_device=settings.inductor_device,
    )


def _request(plan: BuildPlan, model: ModelPlan, out_dir: Path, work_root: Path, check: str) -> dict[str, Any]:
    settings = plan.settings
    return {
        "model": model.name,
        "factory": model.settings.factory,
        "rtol": model.settings.rtol,
        "atol": model.settings.atol,
        "sys_path": [str(p) for p in plan.import_paths],
        "options": asdict(target_options(settings, model)),
        "check": check,
        "inputs": model.input_specs(),
        "batched": model.settings.dynamic_batch or model.settings.batch_buckets is not None,
        "axes": {str(dim): sizes for dim, sizes in model.settings.bucket_axes().items()},
        "dynamic_batch": model.settings.dynamic_batch,
        "output_dims": model.settings.output_dims,
        "jobs": [
            {
                "target": job.target,
                "bucket": [list(pair) for pair in job.bucket],
                "inputs": model.input_specs(job.bucket),
                "path": str(out_dir / (job.stem + get_target(job.target).suffix)),
                "workdir": str(work_root / job.stem),
            }
            for job in model.jobs
        ],
    }


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def compile_model(
    plan: BuildPlan, model: ModelPlan, out_dir: Path, *, check_only: bool = False
) -> dict[str, Any]:
    """Check ``model``, then compile every target of it into ``out_dir`` (unless ``check_only``); return the
    worker's result record."""
    if check_only:
        model = replace(model, jobs=())
    with tempfile.TemporaryDirectory(prefix=f"hatch-neuron-{model.name}-") as tmp:
        tmp_path = Path(tmp)
        request_file, result_file = tmp_path / "request.json", tmp_path / "result.json"
        request_file.write_text(
            json.dumps(
                _request(
                    plan, model, out_dir, tmp_path / "work", "warn" if check_only else plan.settings.check
                )
            )
        )
        command = [sys.executable, "-m", "hatch_neuron.compile.worker", str(request_file), str(result_file)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        log_file = tmp_path / "output.log"
        with log_file.open("w") as log:
            # Output goes to a file, not a pipe: a process the factory left behind may hold it open.
            process = subprocess.Popen(
                command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                process.wait(timeout=plan.settings.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            except BaseException:  # Ctrl-C or a stopped build: take the worker and its children down too
                _kill_group(process)
                raise
            else:
                timed_out = False
            finally:
                _kill_group(process)  # also ends whatever the factory started in the worker's session
        output = log_file.read_text(errors="replace")
        if timed_out:
            raise CompileError(
                f"model {model.name!r}: importing, tracing and verifying took longer than "
                f"{plan.settings.timeout:g} s and was stopped (raise tool.neuron.timeout or "
                f"HATCH_NEURON_TIMEOUT if the compile is just slow). Last output:\n{_tail(output)}"
            )
        if not result_file.exists():
            raise CompileError(
                f"model {model.name!r}: the compile process died (exit code {process.returncode}) "
                f"before reporting a result; the factory or the compiler crashed. "
                f"Last output:\n{_tail(output)}"
            )
        result = json.loads(result_file.read_text())
    if not result["ok"]:
        detail = f"\n{result['traceback']}" if "traceback" in result else ""
        raise CompileError(f"model {model.name!r}: {result['error']}{detail}")
    result["log"] = output
    return result
