"""Shared bits of the attention captioner tests: a tiny captioner over a fake 3 x 3 grid CNN, random
grids, and a synthetic-scene recipe through a random MobileNetV2 grid."""
import torch
from torch import nn

from captionkit.models.attention_captioner import AttentionCaptioner, AttentionConfig
from captionkit.models.captioner import CaptionModelConfig

V, PAD, BOS, EOS, UNK = 15, 0, 1, 2, 3
P, C = 9, 12  # a 3 x 3 grid of 12 channels


class GridEncoder(nn.Module):
    """A stand-in frozen CNN: images are already grids (B, P, C)."""
    out_dim, frozen, identity = C, True, "fake-grid"

    def forward(self, x):
        return x


def model(seed=0, gate=True, grid_proj=8, dropout=0.0) -> AttentionCaptioner:
    torch.manual_seed(seed)
    cfg = CaptionModelConfig(arch="attention", hidden=16, embed=8, dropout=dropout,
                             attention=AttentionConfig(att_dim=10, grid_proj=grid_proj, gate=gate))
    m = AttentionCaptioner(cfg, GridEncoder(), V, PAD).eval()
    with torch.no_grad():  # make the attention peaked enough that weights differ between words
        m.attend.score.weight.mul_(20)
    return m


def grids(n, seed=1):
    return torch.randn(n, P, C, generator=torch.Generator().manual_seed(seed))


def attention_recipe(tmp_path, tune_from=0, **train) -> dict:
    """Synthetic scenes through a (random) MobileNetV2 at 64 px: a 2 x 2 grid of 1280 channels."""
    return {"task": "caption",
            "data": {"source": "synth", "synth_train": 12, "synth_val": 4, "synth_test": 4, "min_count": 1,
                     "synth_size": 32, "group_captions": True},
            "encoder": {"name": "mobilenet_v2", "image_size": 64, "pool": "grid",
                        "cache_dir": str(tmp_path / "cache"), "batch_size": 16},
            "model": {"arch": "attention", "hidden": 16, "embed": 8, "dropout": 0.0,
                      "attention": {"att_dim": 8, "grid_proj": 16, "tune_from": tune_from}},
            "train": {"out_dir": str(tmp_path / "run"), "epochs": 1, "batch_size": 4, "lr": 1e-2,
                      "progress": False, **train},
            "decode": {"max_len": 8}}
