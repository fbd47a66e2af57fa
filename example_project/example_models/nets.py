"""The example models. Each factory builds its weights from a fixed seed, so every build and every test
sees the same model without downloading anything."""

from __future__ import annotations

import torch
from torch import nn

SEED = 20261127


def _seeded(build):
    """Run ``build`` with a fixed torch seed, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        return build().eval()


def scale_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2 * x + y


def make_scale_add():
    """The seed's function example."""
    return scale_add


class Conv(nn.Module):
    """The seed's module example."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + 1


def make_conv() -> nn.Module:
    return _seeded(Conv)


class Classifier(nn.Module):
    """A small CNN for 32x32 RGB images, 10 classes."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(64, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


def make_classifier() -> nn.Module:
    return _seeded(Classifier)


class Block(nn.Module):
    """Pre-norm self-attention + MLP, written out so the graph is plain tensor ops."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(b, t, 3, self.heads, d // self.heads)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        attn = (q @ k.transpose(-1, -2)) / (d // self.heads) ** 0.5 + bias
        x = x + self.out((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """A small transformer encoder over token ids with an attention mask (1 = token, 0 = padding).

    Returns a dict, like Hugging Face encoders: per-token states and a masked mean ("pooled")."""

    def __init__(self, vocab: int = 1000, dim: int = 64, heads: int = 4, layers: int = 2, length: int = 16):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.tokens(ids) + self.positions[:, : ids.shape[1]]
        keep = mask.to(x.dtype)
        bias = (1.0 - keep)[:, None, None, :] * -1e4
        for block in self.blocks:
            x = block(x, bias)
        x = self.norm(x)
        pooled = (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1.0)
        return {"last_hidden_state": x, "pooled": pooled}


def make_encoder() -> nn.Module:
    return _seeded(Encoder)
