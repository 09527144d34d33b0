"""Soft-attention captioner (Show, Attend and Tell): weights, forward == step, decoders, tuning, <unk>,
ensembles. The per-word maps and their figure: test_attention_maps.py."""
import copy

import pytest
import torch
from _attention_toys import BOS, EOS, P, PAD, UNK, V, attention_recipe, grids, model
from torch import nn

from captionkit.decoding import DecodeConfig, beam_search, decode, greedy
from captionkit.errors import UserError
from captionkit.models.attention_captioner import AttentionCaptioner, AttentionConfig
from captionkit.models.captioner import CaptionModelConfig
from captionkit.tasks import load_task
from captionkit.tasks.loading import load_checkpoint


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


@pytest.mark.parametrize("grouped", [True, False])
def test_running_only_unfinished_captions_equals_running_every_step(grouped):
    """Teacher forcing with the real lengths (captions sorted, step t runs those still going) gives the
    full computation's logits, attention, penalty and gradients at the real steps; a mask that is not
    a prefix runs every step."""
    from captionkit.models.attention_captioner import active_rows, prefix_lengths

    m = model(dropout=0.0).train()
    lengths = torch.tensor([3, 7, 1, 5, 7, 2, 4])
    T = 7
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (7, T)
    tokens = torch.randint(3, V, (7, T))
    index = torch.tensor([0, 0, 1, 1, 2, 2, 2]) if grouped else None
    feats = grids(3) if grouped else grids(7)
    assert torch.equal(prefix_lengths(mask), lengths)
    assert active_rows(lengths.sort(descending=True).values, T) == [7, 6, 5, 4, 3, 2, 2]
    full_logits, full_alpha = m.run(feats, tokens, index)
    logits, alpha = m.run(feats, tokens, index, lengths)
    torch.testing.assert_close(logits[mask], full_logits[mask])
    torch.testing.assert_close(alpha[mask], full_alpha[mask])
    assert alpha[~mask].abs().max() == 0  # ended captions attend nowhere
    _, penalty = m(feats, tokens, index, mask=mask)
    torch.testing.assert_close(penalty, doubly_stochastic(full_alpha, mask))

    def grads(logits):
        m.zero_grad()
        logits.log_softmax(-1)[mask].sum().backward()
        return [p.grad.clone() for p in m.parameters() if p.grad is not None]
    for g, ref in zip(grads(m.run(feats, tokens, index, lengths)[0]), grads(m.run(feats, tokens, index)[0])):
        torch.testing.assert_close(g, ref)

    holey = mask.clone()
    holey[2, 4] = True  # a real step after a padded one: not a prefix
    assert prefix_lengths(holey) is None
    _, penalty = m(feats, tokens, index, mask=holey)
    torch.testing.assert_close(penalty, doubly_stochastic(full_alpha, holey))


def doubly_stochastic(alpha, mask):
    return (1 - (alpha * mask.unsqueeze(-1)).sum(1)).pow(2).sum(-1)  # Xu Eq. 14 over real steps, lambda 1


def test_training_forward_adds_the_penalty_for_attention_models_only_also_when_wrapped():
    from captionkit.tasks.caption_scst import training_forward

    m = model()
    feats, tokens = grids(2), torch.randint(3, V, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    index = torch.arange(2)
    ref_logits, ref_penalty = m(feats, tokens, index, mask=mask)
    for wrapped in (m, nn.ModuleDict({"module": m})):  # under DDP the captioner is ``.module``
        wrapped.forward = m.forward
        logits, extra = training_forward(wrapped, feats, tokens, index, mask)
        torch.testing.assert_close(logits, ref_logits)
        torch.testing.assert_close(extra, ref_penalty)

    class Plain(nn.Module):  # an LRCN-like captioner: logits only
        def forward(self, visual, tokens, index=None):
            return torch.zeros(tokens.shape + (V,))
    logits, extra = training_forward(Plain(), feats, tokens, index, mask)
    assert logits.shape == (2, 5, V) and extra is None


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


@pytest.mark.parametrize("cnn, tune_from, cut", [("mobilenet_v2", 17, 160),  # 2 x 2 x 160 after block 16
                                                  ("efficientnet_lite0", 16, 192)])  # after MBConv block 14
def test_tuning_changes_the_upper_blocks_and_leaves_the_cached_lower_blocks_alone(tmp_path, cnn, tune_from, cut):
    from captionkit.features import FeatureCache

    recipe = attention_recipe(tmp_path, tune_from=tune_from)
    recipe["encoder"]["name"] = cnn
    task = load_task(data=recipe)
    task.setup()
    m = task.build_model()
    assert m.encoder.identity.endswith(f":grid:lower{tune_from}") and m.upper is not None
    cached = FeatureCache(tmp_path / "cache", m.encoder.identity).feats
    assert len(cached) == 16 and next(iter(cached.values())).shape == (4, cut)
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
    stages = {".".join(k.split(".")[:2]) for k in changed}  # "blocks.17.conv.0.weight" -> "blocks.17"
    assert {f"blocks.{tune_from}", f"blocks.{tune_from + 1}"} <= stages  # both upper stages learn
    assert all(torch.equal(v, m.upper.state_dict()[k]) for k, v in upper0.items() if "running" in k)  # BN stats
    src = task.train_src
    with torch.no_grad():
        again = m.encoder(torch.stack([m.encoder.preprocess(src.image(i)) for i in range(2)]))
    torch.testing.assert_close(again.half(), torch.stack([cached[i] for i in src.ids()[:2]]))


@pytest.mark.parametrize("cnn, tune_from", [("mobilenet_v2", 0), ("mobilenet_v2", 18), ("efficientnet_lite0", 16)])
def test_trained_checkpoint_rebuilds_the_same_captioner(tmp_path, cnn, tune_from):
    from captionkit.tasks.caption_data import load_split
    from captionkit.tasks.caption_generate import caption_features, caption_source
    from captionkit.train import fit

    recipe = attention_recipe(tmp_path, tune_from=tune_from)
    recipe["encoder"]["name"] = cnn
    task = load_task(data=recipe)
    fit(task)
    task2, m2 = load_checkpoint(tmp_path / "run" / "best.pt", expect="caption")
    assert task2.cfg.model.arch == "attention" and isinstance(m2, AttentionCaptioner)
    assert (m2.upper is not None) == bool(tune_from)
    cfg = DecodeConfig(method="beam", beam_size=2, max_len=6)
    from_images = caption_source(m2, load_split(task2.cfg.data, "val"), task2.vocab, cfg, "cpu", limit=4)
    from_cache = caption_features(m2, task.val_feats[:4], task.vocab, cfg, "cpu")
    assert [h[0][0] for h in from_images] == [h[0][0] for h in from_cache]



def mixed_members(tmp_path=None):
    """An LRCN member (tiny CNN, pooled) and an attention member (MobileNetV2 grid, 2 x 2 x 1280)."""
    from captionkit.encoders import EncoderConfig, build_image_encoder
    from captionkit.models.captioner import Captioner

    torch.manual_seed(0)
    cache = {"cache_dir": str(tmp_path)} if tmp_path else {}
    tiny = build_image_encoder(EncoderConfig(name="tiny", image_size=64, **cache))
    grid = build_image_encoder(EncoderConfig(name="mobilenet_v2", image_size=64, pool="grid", **cache))
    lrcn = Captioner(CaptionModelConfig(hidden=16, embed=8, dropout=0.0, visual_proj=8), tiny, V, PAD)
    att = AttentionCaptioner(CaptionModelConfig(arch="attention", hidden=16, embed=8, dropout=0.0,
                                                attention=AttentionConfig(att_dim=8, grid_proj=16)), grid, V, PAD)
    return lrcn.eval(), att.eval()


@torch.no_grad()
def test_ensemble_of_attention_and_lrcn_members_is_their_mean_and_decodes():
    from captionkit.models.ensemble import Ensemble

    lrcn, att = mixed_members()
    ens = Ensemble([lrcn, att]).eval()
    images = torch.randn(3, 3, 64, 64)
    state = ens.init_state(ens.encoder(images))
    refs = [m.init_state(m.encoder(images)) for m in (lrcn, att)]
    tokens = torch.full((3,), BOS)
    for _ in range(3):
        logp, state = ens.step(tokens, state)
        probs = 0
        for i, m in enumerate((lrcn, att)):
            lp, refs[i] = m.step(tokens, refs[i])
            probs = probs + lp.exp() / 2
        torch.testing.assert_close(logp, probs.log(), atol=1e-5, rtol=1e-5)
        tokens = logp.argmax(1)
    feats = ens.encoder(images)
    batched = beam_search(ens.step, ens.init_state(feats), bos=BOS, eos=EOS, max_len=6, beam_size=3)
    for i in range(3):
        one = beam_search(ens.step, ens.init_state(feats[i:i + 1]), bos=BOS, eos=EOS, max_len=6, beam_size=3)
        assert one[0][0].tokens == batched[i][0].tokens


def test_ensemble_features_from_the_member_caches_equal_the_cnns(tmp_path):
    from PIL import Image

    from captionkit.features import frozen_features
    from captionkit.models.ensemble import Ensemble

    lrcn, att = mixed_members(tmp_path)
    ens = Ensemble([lrcn, att]).eval()
    pics = {f"im{i}": Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy()) for i in range(3)}
    cached = frozen_features(ens.encoder, list(pics), pics.__getitem__, tmp_path)  # (3, D + P*C)
    with torch.no_grad():
        direct = ens.encoder(torch.stack([ens.encoder.preprocess(p) for p in pics.values()]))
    assert cached.shape == direct.shape == (3, 256 + 4 * 1280)
    torch.testing.assert_close(cached, direct, atol=2e-3, rtol=2e-3)  # grids are cached in fp16


def test_full_end_to_end_path_trains_the_whole_cnn_from_images():
    from captionkit.encoders import EncoderConfig, build_image_encoder

    torch.manual_seed(0)
    enc = build_image_encoder(EncoderConfig(name="mobilenet_v2", image_size=64, pool="grid", finetune=True))
    m = AttentionCaptioner(CaptionModelConfig(arch="attention", hidden=16, embed=8, dropout=0.0,
                                              attention=AttentionConfig(att_dim=8, grid_proj=16)), enc, V, PAD)
    images, tokens = torch.randn(2, 3, 64, 64), torch.randint(3, V, (4, 5))
    logits, penalty = m(images, tokens, torch.tensor([0, 0, 1, 1]))
    assert logits.shape == (4, 5, V)
    (logits.logsumexp(-1).sum() + penalty.sum()).backward()
    first_conv = enc.net[0][0][0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
