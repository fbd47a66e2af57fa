"""The records the build process and its workers exchange round-trip through JSON (fast, in-process)."""

from __future__ import annotations

import json

from hatch_neuron.cache.remote import RemoteSettings
from hatch_neuron.compile.contracts import (
    ArtifactRecord,
    BucketOutputs,
    BuildContext,
    JobRequest,
    ModelRequest,
    ModelResult,
    Origin,
    WorkerRequest,
    WorkerResult,
)
from hatch_neuron.compile.options import InductorOptions, NeuronOptions, NoOptions
from hatch_neuron.runtime.schema import ArtifactEntry, FileEntry, OutputsEntry

ENTRY = ArtifactEntry(
    "m.xla.d0-4.stablehlo.zip", "a" * 64, 10,
    bucket={"0": 4}, input_shapes=[[4, 3]], output_shapes=[[4, 2]], format="stablehlo", verified=True,
    aliased_outputs=(1,), companions={".hlo.pb": FileEntry("m.xla.d0-4.hlo.pb", "b" * 64, 5)},
    details={"device": "xla"},
)  # fmt: skip
RECORD = ArtifactRecord(ENTRY, "xla", Origin.REMOTE_CACHE, 2.5, ["xla: a warning"], {"torch-xla": "2.9.0"})


def through_json(value: object) -> object:
    """``value`` written to JSON text and read back (what crosses the process boundary)."""
    cls = type(value)
    return cls.from_json(json.loads(json.dumps(value.to_json())))  # type: ignore[attr-defined]


def test_worker_request_round_trips() -> None:
    options = {
        "neuron": NeuronOptions(["-O2"], "inf2"),
        "inductor": InductorOptions(configs={"freezing": True}),
        "cpu": NoOptions(),
    }
    inputs = [{"shape": [1, 3], "dtype": "float32", "low": None, "high": None, "bucketed": [0]}]
    model = ModelRequest("m", "pkg.nets:make", 1e-4, None, options, inputs, True)
    job = JobRequest("xla", "m.xla.d0-4", ((0, 4),), [{"shape": [4, 3]}], "/o/m.pt", "/w/m")
    build = BuildContext({"torch": "2.13.0"}, True, RemoteSettings("s3://b/p", timeout=3.0), "/cache", 2)
    request = WorkerRequest(model, "prepare", "error", [job], build, "/tmp/w", ["/src"])
    assert through_json(request) == request


def test_worker_result_round_trips() -> None:
    result = WorkerResult(
        findings=[{"kind": "control-flow", "message": "x", "where": "y", "fix": "z"}],
        artifacts={"m.xla.d0-4": RECORD}, keys={"m.xla.d0-4": "k" * 64}, events=["cache: slow"],
        outputs=BucketOutputs("m.xla.d0-4", {"t": "T"}, [{"shape": [4, 2], "dtype": "float32"}]),
        cache_fault=None, reads={"/src/pkg/nets.py": "c" * 64}, imported=["numpy"],
    )  # fmt: skip
    assert through_json(result) == result
    failed = WorkerResult(ok=False, error="model 'm': boom", traceback="Traceback ...")
    assert through_json(failed) == failed


def test_a_record_keeps_build_only_fields_apart() -> None:
    assert through_json(RECORD) == RECORD
    assert "seconds" not in RECORD.entry.to_json() and "origin" not in RECORD.entry.to_json()
    facts = RECORD.facts()  # what the cache keeps: no file names, hashes or bucket shapes
    assert facts["toolchain"] == {"torch-xla": "2.9.0"} and facts["device"] == "xla"
    assert not {"file", "sha256", "size", "bucket", "input_shapes", "companions"} & set(facts)


def test_model_result_round_trips_in_job_order() -> None:
    cpu = ArtifactRecord(ArtifactEntry("m.cpu.pt", "d" * 64, 3), "cpu", Origin.COMPILED, 1.0)
    result = ModelResult(OutputsEntry("T", [], [[0, -1]]), {"m.xla.d0-4": RECORD, "m.cpu": cpu}, [], ["w"])
    assert through_json(result) == result
    assert list(result.by_target()) == ["xla", "cpu"] and result.by_target()["cpu"] == [cpu]
