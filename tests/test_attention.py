"""The shared soft-attention module: weights are a distribution, the context is their expectation,
the penalty matches its definition on hand-made weights, and grid encoders keep every position."""
import pytest
import torch

from captionkit.attention import SoftAttention, StateInit, doubly_stochastic_penalty
from captionkit.encoders import EncoderConfig, build_image_encoder
from captionkit.features import FeatureCache


@pytest.mark.parametrize("kind", ["location", "content"])
def test_weights_sum_to_one_and_context_is_expectation(kind):
    torch.manual_seed(0)
    att = SoftAttention(kind, feature_dim=6, state_dim=5, positions=9, att_dim=4)
    grid, h = torch.randn(3, 9, 6), torch.randn(3, 5)
    context, alpha = att(grid, h)
    assert alpha.shape == (3, 9) and torch.allclose(alpha.sum(-1), torch.ones(3))
    assert (alpha > 0).all()
    expected = torch.stack([sum(alpha[b, i] * grid[b, i] for i in range(9)) for b in range(3)])
    assert torch.allclose(context, expected, atol=1e-6)
    # the precomputed projection gives the same answer (the captioner projects once per image)
    context2, alpha2 = att(grid, h, projected=att.project(grid))
    assert torch.allclose(alpha, alpha2) and torch.allclose(context, context2)


def test_location_attention_ignores_content_and_content_attention_does_not():
    torch.manual_seed(0)
    h = torch.randn(2, 5)
    loc, con = SoftAttention("location", 6, 5, 4), SoftAttention("content", 6, 5, 4, att_dim=8)
    g1, g2 = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    assert torch.allclose(loc(g1, h)[1], loc(g2, h)[1])
    assert not torch.allclose(con(g1, h)[1], con(g2, h)[1])


def test_location_attention_rejects_a_grid_of_another_size():
    with pytest.raises(ValueError, match=r"\(B, 4, D\)"):
        SoftAttention("location", 6, 5, 4)(torch.randn(2, 9, 6), torch.randn(2, 5))


def test_penalty_on_hand_made_weights():
    # two steps over three positions: column sums (1, 0.5, 0.5) -> (0)^2 + 0.5^2 + 0.5^2 = 0.5
    w = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]]])
    assert torch.allclose(doubly_stochastic_penalty(w), torch.tensor([0.5]))
    # a padded third step is ignored: same answer with a mask
    w3 = torch.cat([w, torch.tensor([[[1.0, 0.0, 0.0]]])], dim=1)
    assert torch.allclose(doubly_stochastic_penalty(w3, torch.tensor([[1, 1, 0]])), torch.tensor([0.5]))
    # attending to each position exactly once over time costs nothing
    assert doubly_stochastic_penalty(torch.eye(3).unsqueeze(0)).item() == 0.0


def test_state_init_shapes_and_batch_independence():
    torch.manual_seed(0)
    init = StateInit(feature_dim=6, hidden=4, layers=3)
    x = torch.randn(5, 6)
    h, c = init(x)
    assert h.shape == c.shape == (3, 5, 4)
    h1, c1 = init(x[2:3])
    assert torch.allclose(h[:, 2:3], h1, atol=1e-6) and torch.allclose(c[:, 2:3], c1, atol=1e-6)
    h_only, none = StateInit(6, 4, 2, cell=False)(x)
    assert h_only.shape == (2, 5, 4) and none is None


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_grid_encoder_keeps_every_position(name):
    torch.manual_seed(0)
    grid_enc = build_image_encoder(EncoderConfig(name=name, image_size=64, pool="grid")).eval()
    avg_enc = build_image_encoder(EncoderConfig(name=name, image_size=64, pool="avg")).eval()
    avg_enc.load_state_dict(grid_enc.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        g, a = grid_enc(x), avg_enc(x)
    assert g.shape == (2, 4, grid_enc.out_dim)  # 64 px / 32 = 2 x 2 positions
    assert torch.allclose(g.mean(1), a, atol=1e-5)  # the grid averages to the pooled feature
    assert grid_enc.identity != avg_enc.identity


def test_grid_features_are_cached_in_half_precision(tmp_path):
    cache = FeatureCache(tmp_path, "enc:grid")
    cache.add(["a", "b"], torch.randn(2, 4, 3))
    cache.add(["c"], torch.randn(1, 3))
    again = FeatureCache(tmp_path, "enc:grid")
    assert again.feats["a"].dtype == torch.float16 and again.feats["a"].shape == (4, 3)
    assert again.feats["c"].dtype == torch.float32
