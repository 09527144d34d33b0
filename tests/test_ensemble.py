"""Ensembles of captioners: the step is the members' mean probability, state by state, CNN by CNN."""
import numpy as np
import pytest
import torch
from PIL import Image

from captionkit.decoding import DecodeConfig, decode
from captionkit.encoders import EncoderConfig, build_image_encoder
from captionkit.models.captioner import CaptionModelConfig, Captioner
from captionkit.features import frozen_features
from captionkit.models.ensemble import Ensemble, EnsembleEncoder

V, BOS, EOS = 12, 1, 2


def captioner(seed: int, variant="2f", unit="lstm", finetune=False, image_size=16) -> Captioner:
    torch.manual_seed(seed if finetune else 123)  # frozen CNNs of one identity have one set of weights
    enc = build_image_encoder(EncoderConfig(name="tiny", finetune=finetune, image_size=image_size))
    torch.manual_seed(seed + 1000)
    cfg = CaptionModelConfig(variant=variant, unit=unit, hidden=16, embed=8, dropout=0.0, visual_proj=8)
    return Captioner(cfg, enc, V, pad_id=0).eval()


def reference_greedy(members, feats, max_len=8):
    """Greedy decoding with each member stepping its own state (from its own CNN's features ``feats[m]``)
    and the probabilities averaged here."""
    states = [m.init_state(f) for m, f in zip(members, feats)]
    B = feats[0].size(0)
    tokens = torch.full((B,), BOS)
    out, done = [[] for _ in range(B)], torch.zeros(B, dtype=torch.bool)
    for _ in range(max_len):
        probs = 0
        for i, m in enumerate(members):
            logp, states[i] = m.step(tokens, states[i])
            probs = probs + logp.exp() / len(members)
        tokens = probs.argmax(1)
        for b in range(B):
            if not done[b]:
                if tokens[b] == EOS:
                    done[b] = True
                else:
                    out[b].append(int(tokens[b]))
    return out


@torch.no_grad()
def test_step_is_the_log_of_the_mean_member_probability_at_every_step():
    members = [captioner(0, "2f"), captioner(1, "1u", "rnn"), captioner(2, "2u")]
    ens = Ensemble(members).eval()
    assert ens.encoder is members[0].encoder  # one frozen CNN identity: features computed once
    images = torch.randn(3, 3, 16, 16)
    state = ens.init_state(ens.encoder(images))
    ref_states = [m.init_state(m.encoder(images)) for m in members]
    tokens = torch.tensor([BOS, BOS, BOS])
    for t in range(4):
        logp, state = ens.step(tokens, state)
        ref = 0
        for i, m in enumerate(members):
            lp, ref_states[i] = m.step(tokens, ref_states[i])
            ref = ref + lp.exp() / 3
        torch.testing.assert_close(logp, ref.log(), atol=1e-5, rtol=1e-5)
        tokens = torch.tensor([3 + t, 5, 7 - t])


@torch.no_grad()
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_ensemble_of_copies_decodes_like_the_model(method):
    m = captioner(0)
    images = torch.randn(4, 3, 16, 16)
    cfg = DecodeConfig(method=method, beam_size=3 if method == "beam" else 1, max_len=8)
    one = decode(m.step, m.init_state(m.encoder(images)), cfg, bos=BOS, eos=EOS)
    ens = Ensemble([m, m])
    two = decode(ens.step, ens.init_state(ens.encoder(images)), cfg, bos=BOS, eos=EOS)
    assert [[h.tokens for h in per] for per in one] == [[h.tokens for h in per] for per in two]
    for a, b in zip(one, two):
        assert a[0].logp == pytest.approx(b[0].logp, abs=1e-4)


@torch.no_grad()
def test_members_with_their_own_cnns_see_their_own_features():
    members = [captioner(0, finetune=True), captioner(1, finetune=True), captioner(2, finetune=True)]
    ens = Ensemble(members).eval()
    assert isinstance(ens.encoder, EnsembleEncoder) and not ens.encoder.frozen
    assert ens.encoder.out_dim == 3 * members[0].encoder.out_dim
    images = torch.randn(5, 3, 16, 16)
    hyps = decode(ens.step, ens.init_state(ens.encoder(images)), DecodeConfig(max_len=8), bos=BOS, eos=EOS)
    assert [per[0].tokens for per in hyps] == reference_greedy(members, [m.encoder(images) for m in members])


@torch.no_grad()
def test_batched_ensemble_equals_one_image_at_a_time():
    ens = Ensemble([captioner(0, finetune=True), captioner(1, "1u")]).eval()
    images = torch.randn(4, 3, 16, 16)
    cfg = DecodeConfig(method="beam", beam_size=2, max_len=8)
    batched = decode(ens.step, ens.init_state(ens.encoder(images)), cfg, bos=BOS, eos=EOS)
    for i in range(4):
        single = decode(ens.step, ens.init_state(ens.encoder(images[i:i + 1])), cfg, bos=BOS, eos=EOS)
        assert single[0][0].tokens == batched[i][0].tokens


@torch.no_grad()
def test_members_at_different_input_sizes_each_see_their_own_preprocessing(tmp_path):
    members = [captioner(0, image_size=16), captioner(1, image_size=32), captioner(2, "1u", image_size=16)]
    ens = Ensemble(members).eval()
    assert isinstance(ens.encoder, EnsembleEncoder) and len(ens.encoder.encoders) == 2  # 16 shared
    rng = np.random.default_rng(0)
    pics = {f"img{i}": Image.fromarray(rng.integers(0, 255, (20 + 3 * i, 24, 3), dtype=np.uint8)) for i in range(3)}
    ids = list(pics)
    own = [torch.stack([m.encoder.preprocess(pics[i]) for i in ids]) for m in members]
    feats = [m.encoder(x) for m, x in zip(members, own)]  # each member's CNN on its own input size
    joint = ens.encoder(torch.stack([ens.encoder.preprocess(pics[i]) for i in ids]))
    torch.testing.assert_close(joint, torch.cat(feats[:2], 1))
    hyps = decode(ens.step, ens.init_state(joint), DecodeConfig(max_len=8), bos=BOS, eos=EOS)
    assert [per[0].tokens for per in hyps] == reference_greedy(members, feats)
    # frozen CNNs read (and fill) their own feature caches
    assert frozen_features(ens.encoder, ids, pics.__getitem__, None) is None
    cached = frozen_features(ens.encoder, ids, pics.__getitem__, tmp_path)
    torch.testing.assert_close(cached, joint)
    assert len(list(tmp_path.iterdir())) == 2
    torch.testing.assert_close(frozen_features(ens.encoder, ids, lambda i: 1 / 0, tmp_path), joint)
