"""Soft-attention captioner (Show, Attend and Tell): weights, forward == step, decoders, tuning, <unk>."""
import copy

import pytest
import torch
from torch import nn

from captionkit.decoding import DecodeConfig, beam_search, decode, greedy
from captionkit.errors import UserError
from captionkit.models.attention_captioner import AttentionCaptioner, AttentionConfig
from captionkit.models.captioner import CaptionModelConfig
from captionkit.tasks import load_task
from captionkit.tasks.loading import load_checkpoint

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


@pytest.mark.parametrize("gate", [True, False])
@torch.no_grad()
def test_attention_weights_sum_to_one_per_word_and_move(gate):
    m = model(gate=gate)
    tokens = torch.randint(3, V, (4, 6))
    alpha = m.attention_maps(grids(4), tokens)  # (B, T, P)
    assert alpha.shape == (4, 6, P)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(4, 6))
    assert (alpha[:, 1:] - alpha[:, :1]).abs().max() > 1e-3  # not one fixed map for every word
    state = m.init_state(grids(4))
    for t in range(3):
        _, state = m.step(tokens[:, t], state)
        torch.testing.assert_close(state[-1].sum(-1), torch.ones(4))
        torch.testing.assert_close(state[-1], alpha[:, t])  # the state carries this word's attention


@torch.no_grad()
def test_forward_equals_step_by_step_and_index_equals_repeating_the_image():
    m = model()
    feats, tokens = grids(3), torch.randint(3, V, (6, 7))
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    logits, penalty = m(feats.half(), tokens, index)  # fp16 grids, as the feature cache stores them
    state = m.init_state(feats.half().index_select(0, index))
    for t in range(tokens.size(1)):
        logp, state = m.step(tokens[:, t], state)
        torch.testing.assert_close(logp, torch.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-5)
    rep, _ = m(feats.half().index_select(0, index), tokens)
    torch.testing.assert_close(rep, logits)
    alpha = m.attention_maps(feats.half().index_select(0, index), tokens)
    torch.testing.assert_close(penalty, ((1 - alpha.sum(1)) ** 2).sum(-1))  # Xu Eq. 14, lambda = 1


def test_penalty_ignores_padded_steps_and_trains_the_attention():
    m = model().train()
    feats, tokens = grids(2), torch.randint(3, V, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    _, full = m(feats, tokens, mask=mask)
    _, short = m(feats, tokens[:, :3])
    torch.testing.assert_close(full[0], short[0])
    full.sum().backward()
    assert m.attend.score.weight.grad.abs().sum() > 0


@torch.no_grad()
def test_beam_search_batched_equals_one_image_at_a_time():
    m = model()
    feats = grids(5)
    batched = beam_search(m.step, m.init_state(feats), bos=BOS, eos=EOS, max_len=8, beam_size=4, nbest=3)
    for i in range(5):
        one = beam_search(m.step, m.init_state(feats[i:i + 1]), bos=BOS, eos=EOS, max_len=8, beam_size=4, nbest=3)[0]
        assert [h.tokens for h in one] == [h.tokens for h in batched[i]]
        assert [h.logp for h in one] == pytest.approx([h.logp for h in batched[i]], abs=1e-6)


@torch.no_grad()
def test_beam_hypothesis_logp_is_the_teacher_forced_score():
    from captionkit.decoding import score_sequences
    m = model()
    feats = grids(3)
    hyps = [h[0] for h in beam_search(m.step, m.init_state(feats), bos=BOS, eos=EOS, max_len=6, beam_size=3)]
    L = max(len(h.tokens) for h in hyps)
    seqs = torch.tensor([h.tokens + [PAD] * (L - len(h.tokens)) for h in hyps])
    scores = score_sequences(m.step, m.init_state(feats), seqs, [len(h.tokens) for h in hyps], bos=BOS,
                             eos=EOS, with_eos=torch.tensor([h.finished for h in hyps]))
    assert scores.tolist() == pytest.approx([h.logp for h in hyps], abs=1e-5)


def unk_loving(m: AttentionCaptioner) -> AttentionCaptioner:
    with torch.no_grad():
        m.out.bias[UNK] += 8.0  # <unk> would be most words' argmax
    return m


@pytest.mark.parametrize("cfg", [DecodeConfig(), DecodeConfig(method="beam", beam_size=3),
                                 DecodeConfig(method="sample", n=5, temperature=1.0)])
@torch.no_grad()
def test_unk_is_never_generated_unless_allowed(cfg):
    m = unk_loving(model())
    feats = grids(6)
    masked = decode(m.step, m.init_state(feats), cfg, bos=BOS, eos=EOS, unk=UNK)
    assert all(UNK not in h.tokens for per in masked for h in per)
    allowed = decode(m.step, m.init_state(feats), DecodeConfig(**{**cfg.__dict__, "allow_unk": True}),
                     bos=BOS, eos=EOS, unk=UNK)
    assert any(UNK in h.tokens for per in allowed for h in per)


@torch.no_grad()
def test_masked_hypotheses_keep_the_models_log_probability():
    m = unk_loving(model())
    feats = grids(2)
    plain = greedy(m.step, m.init_state(feats), bos=BOS, eos=EOS, max_len=6)
    masked = decode(m.step, m.init_state(feats), DecodeConfig(max_len=6), bos=BOS, eos=EOS, unk=UNK)
    assert [p[0].tokens for p in plain] != [p[0].tokens for p in masked]
    for i, per in enumerate(masked):
        h = per[0]
        logits, _ = m(feats[i:i + 1], torch.tensor([[BOS] + h.tokens]))
        logp = torch.log_softmax(logits[0], -1)  # (T, V), not renormalised without <unk>
        targets = h.tokens + ([EOS] if h.finished else [])
        assert sum(float(logp[t, w]) for t, w in enumerate(targets)) == pytest.approx(h.logp, abs=1e-4)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="model.arch"):
        CaptionModelConfig(arch="transformer")
    with pytest.raises(ValueError, match="model.attention.att_dim"):
        AttentionConfig(att_dim=0)
    task = load_task(data={"task": "caption", "model": {"arch": "attention"},
                           "encoder": {"name": "mobilenet_v2", "pool": "avg"}})
    with pytest.raises(UserError, match="encoder.pool"):
        task.encoder()


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


def test_tuning_changes_the_upper_blocks_and_leaves_the_cached_lower_blocks_alone(tmp_path):
    from captionkit.features import FeatureCache

    task = load_task(data=attention_recipe(tmp_path, tune_from=17))
    task.setup()
    m = task.build_model()
    assert m.encoder.identity.endswith(":grid:lower17") and m.upper is not None
    cached = FeatureCache(tmp_path / "cache", m.encoder.identity).feats
    assert len(cached) == 16 and next(iter(cached.values())).shape == (4, 160)  # 2 x 2 x 160 after block 16
    lower0, upper0 = copy.deepcopy(m.encoder.state_dict()), copy.deepcopy(m.upper.state_dict())
    opt = torch.optim.Adam([g for group in task.param_groups(m, 1e-2) for g in group["params"]], lr=1e-2)
    m.train()
    batch = task.collate([task.train_set[i] for i in range(4)])
    for _ in range(2):
        loss, n = task.loss(m, batch, "cpu")
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
    assert all(torch.equal(v, m.encoder.state_dict()[k]) for k, v in lower0.items())
    changed = [k for k, v in upper0.items() if not torch.equal(v, m.upper.state_dict()[k])]
    assert any(k.startswith("blocks.17.") for k in changed) and any(k.startswith("blocks.18.") for k in changed)
    assert all(torch.equal(v, m.upper.state_dict()[k]) for k, v in upper0.items() if "running" in k)  # BN stats
    src = task.train_src
    with torch.no_grad():
        again = m.encoder(torch.stack([m.encoder.preprocess(src.image(i)) for i in range(2)]))
    torch.testing.assert_close(again.half(), torch.stack([cached[i] for i in src.ids()[:2]]))


@pytest.mark.parametrize("tune_from", [0, 18])
def test_trained_checkpoint_rebuilds_the_same_captioner(tmp_path, tune_from):
    from captionkit.tasks.caption_data import load_split
    from captionkit.tasks.caption_generate import caption_features, caption_source
    from captionkit.train import fit

    task = load_task(data=attention_recipe(tmp_path, tune_from=tune_from))
    fit(task)
    task2, m2 = load_checkpoint(tmp_path / "run" / "best.pt", expect="caption")
    assert task2.cfg.model.arch == "attention" and isinstance(m2, AttentionCaptioner)
    assert (m2.upper is not None) == bool(tune_from)
    cfg = DecodeConfig(method="beam", beam_size=2, max_len=6)
    from_images = caption_source(m2, load_split(task2.cfg.data, "val"), task2.vocab, cfg, "cpu", limit=4)
    from_cache = caption_features(m2, task.val_feats[:4], task.vocab, cfg, "cpu")
    assert [h[0][0] for h in from_images] == [h[0][0] for h in from_cache]

