"""``hatch-neuron inspect`` reads only what a manifest names, streamed; bad inputs are one line and exit
code 2; a package name is looked up on sys.path without importing anything (fast: no builds)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, run

from hatch_neuron.cli import main

ARTIFACT = b"not really TorchScript, but inspect only hashes it" * 100
JUNK_BYTES = 1 << 30


def manifest(package: str = "demo_pkg", **changes: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "package": package,
        "module": "compiled",
        "load": "import",
        "targets": ["cpu"],
        "compiler_args": [],
        "neuron_target": None,
        "built_with": {"hatch-neuron": "0.1.0", "torch": "2.13.0", "python": "3.11"},
        "models": {
            "m": {
                "factory": "nets:make",
                "inputs": [{"shape": [2, 3], "dtype": "float32"}],
                "outputs": {"tree": "T", "specs": [{"shape": [2, 3], "dtype": "float32"}]},
                "artifacts": {
                    "cpu": [
                        {
                            "bucket": {},
                            "file": "m.cpu.pt",
                            "sha256": hashlib.sha256(ARTIFACT).hexdigest(),
                            "size": len(ARTIFACT),
                            "verified": True,
                        }
                    ]
                },
            }
        },
        **changes,
    }


def write_wheel(path: Path, files: dict[str, bytes], package: str = "demo_pkg") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(f"{package}/_hatch_neuron/{name}", data)
    return path


def write_package(root: Path, dotted: str, artifact: bytes = ARTIFACT) -> Path:
    folder = root.joinpath(*dotted.split("."), "_hatch_neuron")
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest(dotted)))
    (folder / "m.cpu.pt").write_bytes(artifact)
    return folder.parent


def inspect(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, path: str | Path) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"hatch-neuron: {path}: "), err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture(scope="module")
def junk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small wheel whose manifest names one small artifact, plus a 1 GiB (uncompressed) member under
    ``_hatch_neuron/`` that the manifest does not name (written streamed: a few MB on disk)."""
    path = write_wheel(
        tmp_path_factory.mktemp("junk") / "demo_pkg-0.1.0-py3-none-any.whl",
        {"manifest.json": json.dumps(manifest()).encode(), "m.cpu.pt": ARTIFACT},
    )
    block = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as wheel,
        wheel.open("demo_pkg/_hatch_neuron/junk.bin", "w") as member,
    ):
        for _ in range(JUNK_BYTES // len(block)):
            member.write(block)
    assert path.stat().st_size < 16 << 20
    return path


def _inspect_peak_kib(wheel: Path) -> int:
    """Peak RSS (KiB) of a fresh interpreter running ``hatch-neuron inspect`` on ``wheel``."""
    code = "import resource, sys\nfrom hatch_neuron.cli import main\nrc = main(sys.argv[1:])\n"
    code += "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    code += "sys.exit(rc)"
    result = run([sys.executable, "-c", code, "inspect", wheel], check=False)
    assert result.returncode == 0, result.stderr
    assert "m.cpu.pt" in result.stdout and "(ok)" in result.stdout and "junk.bin" not in result.stdout
    return int(result.stderr.split("maxrss")[1].split()[0])  # Linux: KiB


def test_unnamed_members_are_not_read(junk_wheel: Path, tmp_path: Path) -> None:
    """The 1 GiB member costs no memory: the peak is that of the same wheel without it (torch's import
    is most of both), within 64 MiB."""
    plain = write_wheel(
        tmp_path / "demo_pkg-0.1.0-py3-none-any.whl",
        {"manifest.json": json.dumps(manifest()).encode(), "m.cpu.pt": ARTIFACT},
    )
    baseline, with_junk = _inspect_peak_kib(plain), _inspect_peak_kib(junk_wheel)
    assert with_junk < baseline + 64 * 1024, f"peak RSS {with_junk >> 10} MB vs {baseline >> 10} MB"


def test_artifacts_are_hashed_in_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 128 MiB artifact is hashed from its zip member block by block (tracemalloc sees a few blocks at
    most), and one whose size is not the recorded one is refused without decompressing a byte."""
    import tracemalloc

    from hatch_neuron.targets import TARGET_NAMES, loader

    for name in TARGET_NAMES:  # the loaders (and torch) imported before measuring
        loader(name)

    size = 128 << 20
    block = bytes(1 << 20)
    digest = hashlib.sha256()
    for _ in range(size // len(block)):
        digest.update(block)

    def big_wheel(path: Path, recorded: int) -> Path:
        described = manifest()
        entry = {"bucket": {}, "file": "big.bin", "sha256": digest.hexdigest(), "size": recorded}
        described["models"]["m"]["artifacts"]["cpu"] = [{**entry, "verified": False}]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as wheel:
            wheel.writestr("demo_pkg/_hatch_neuron/manifest.json", json.dumps(described))
            with wheel.open("demo_pkg/_hatch_neuron/big.bin", "w") as member:
                for _ in range(size // len(block)):
                    member.write(block)
        return path

    wheel = big_wheel(tmp_path / "big.whl", size)
    tracemalloc.start()
    try:
        code, out, _ = inspect(capsys, wheel)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0 and "big.bin  128.0 MiB" in out and "(ok)" in out
    assert peak < 16 << 20, peak
    code, out, _ = inspect(capsys, big_wheel(tmp_path / "lies.whl", size - 1))
    assert code == 1 and "(MISMATCH)" in out


def test_giant_manifest_member_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "giant.whl"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel,
        wheel.open("demo_pkg/_hatch_neuron/manifest.json", "w") as member,
    ):
        for _ in range(65):
            member.write(b" " * (1 << 20))
    code, out, err = inspect(capsys, path)
    assert code == 2 and out == ""
    assert "68157440 bytes, more than the 67108864 bytes a manifest may have" in one_line(err, path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("garbage.whl", os.urandom(4096), "not a wheel: not a zip archive"),
        ("empty.whl", b"", "not a wheel: not a zip archive"),
        ("notes.txt", b"just some notes\n", "not a wheel (a zip archive), a manifest.json, a folder"),
    ],
)
def test_files_that_are_not_wheels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = inspect(capsys, path)
    assert code == 2 and out == ""
    assert expected in one_line(err, path)


def test_corrupt_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_wheel(
        tmp_path / "good.whl", {"manifest.json": json.dumps(manifest()).encode(), "m.cpu.pt": ARTIFACT}
    )
    data = good.read_bytes()
    cut = tmp_path / "cut.whl"
    cut.write_bytes(data[: len(data) // 2] + data[-22:])  # end record kept, central directory gone
    code, _, err = inspect(capsys, cut)
    assert code == 2 and "not a zip archive, or a corrupt one" in one_line(err, cut)
    with zipfile.ZipFile(good) as wheel:
        info = wheel.getinfo("demo_pkg/_hatch_neuron/manifest.json")
    damaged = bytearray(data)
    damaged[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF  # the manifest's compressed bytes
    broken = tmp_path / "broken.whl"
    broken.write_bytes(bytes(damaged))
    code, _, err = inspect(capsys, broken)
    assert code == 2 and "manifest.json: cannot be read from the archive" in one_line(err, broken)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps({"format": 1, "package": "demo_pkg", "targets": ["cpu"]}), "no 'models' object"),
        ('{"format": 1, "models": {', "not valid JSON"),
        ("[]", "the manifest is a JSON list, not an object"),
        (json.dumps({**manifest(), "format": 7}), "manifest format 7 is not supported"),
        (json.dumps(manifest(built_with="x")), "'built_with' is not an object"),
        (json.dumps({k: v for k, v in manifest().items() if k != "module"}), "malformed manifest"),
        (json.dumps(manifest()).replace('"m.cpu.pt"', '"../m.cpu.pt"'), "not a plain file name"),
    ],
)
def test_malformed_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    wheel = write_wheel(tmp_path / "bad.whl", {"manifest.json": text.encode(), "m.cpu.pt": ARTIFACT})
    code, out, err = inspect(capsys, wheel)
    assert code == 2 and out == ""
    assert expected in one_line(err, wheel) and "demo_pkg/_hatch_neuron/manifest.json: " in err
    folder = tmp_path / "site" / "demo_pkg" / "_hatch_neuron"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(text)
    for path in (tmp_path / "site", folder / "manifest.json"):
        code, out, err = inspect(capsys, path)
        assert code == 2 and out == "" and expected in one_line(err, path)


def test_folder_mismatch_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = write_package(tmp_path / "site", "demo_pkg")
    code, out, _ = inspect(capsys, package)
    assert code == 0 and "m.cpu.pt  4.9 KiB  sha256" in out and "(ok)" in out
    (package / "_hatch_neuron" / "m.cpu.pt").write_bytes(ARTIFACT[:-1] + b"!")
    code, out, _ = inspect(capsys, tmp_path / "site")
    assert code == 1 and "(MISMATCH)" in out
    (package / "_hatch_neuron" / "m.cpu.pt").unlink()
    (package / "_hatch_neuron" / "m.cpu.pt").symlink_to("/dev/zero")
    code, out, _ = inspect(capsys, package)
    assert code == 1 and "(MISMATCH)" in out
    (package / "_hatch_neuron" / "m.cpu.pt").unlink()
    code, out, _ = inspect(capsys, package)
    assert code == 1 and "(MISSING)" in out


def test_nothing_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for target in (tmp_path / "nothing.whl", "no_such_pkg.sub", "not a name!"):
        code, out, err = inspect(capsys, target)
        assert (
            code == 2
            and out == ""
            and "not a wheel, a folder or an installed package" in one_line(err, target)
        )
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        code, _, err = inspect(capsys, tmp_path / "fifo")
        assert code == 2 and "not a regular file or a folder" in one_line(err, tmp_path / "fifo")


def test_file_named_like_a_module_is_not_imported(tmp_path: Path) -> None:
    """``python -m`` puts the current folder on sys.path: ``inspect notes.txt`` must not run ./notes.py."""
    marker = tmp_path / "imported"
    (tmp_path / "notes.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    for present in (False, True):
        if present:
            (tmp_path / "notes.txt").write_text("some notes\n")
        result = run(
            [sys.executable, "-m", "hatch_neuron", "inspect", "notes.txt"], cwd=tmp_path, check=False
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("hatch-neuron: notes.txt: ") and result.stderr.count("\n") == 1
        assert not marker.exists()


def test_package_name_is_looked_up_without_importing(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    site = tmp_path / "site"
    write_package(site, "a.b")
    (site / "a" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (site / "a" / "b" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(PYTHONPATH=str(site))
    found = run([sys.executable, "-m", "hatch_neuron", "inspect", "a.b"], env=env, cwd=elsewhere, check=False)
    assert found.returncode == 0, found.stderr
    assert f"a.b  ({site / 'a' / 'b' / '_hatch_neuron' / 'manifest.json'})" in found.stdout
    assert "(ok)" in found.stdout
    missing = run(
        [sys.executable, "-m", "hatch_neuron", "inspect", "a.c"], env=env, cwd=elsewhere, check=False
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    # the current folder is not searched (python -m put it on sys.path)
    here = run([sys.executable, "-m", "hatch_neuron", "inspect", "a.b"], cwd=site, check=False)
    assert here.returncode == 2 and "not a wheel, a folder or an installed package" in here.stderr
    assert not marker.exists()
