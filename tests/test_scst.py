"""Self-critical training: the loss is -(reward - baseline) * log p of the model's own samples, it
raises the reward, and a second stage starts from a checkpoint (train.init_from)."""
import pytest
import torch

from captionkit.decoding import PAD, sample_n, score_sequences
from captionkit.errors import UserError
from captionkit.tasks import load_task
from captionkit.tasks.caption_scst import SCSTConfig, scst_loss
from captionkit.train import fit

from conftest import tiny_caption_recipe


@pytest.fixture(scope="module")
def xe_run(tmp_path_factory):
    """A cross-entropy captioner on synthetic scenes (the first stage)."""
    root = tmp_path_factory.mktemp("scst")
    fit(load_task(data=tiny_caption_recipe(root / "xe", **stage(root), train={"epochs": 8, "batch_size": 16})))
    return root


def stage(root) -> dict:
    return {"data": {"synth_train": 64}, "encoder": {"finetune": False, "cache_dir": str(root / "cache")}}


def scst_task(root, out, **train):
    recipe = tiny_caption_recipe(out, **stage(root), model={"dropout": 0.3},
                                 train={"init_from": str(root / "xe" / "best.pt"), **train})
    recipe["scst"] = {"samples": 4, "max_len": 10}
    return load_task(data=recipe)


def test_loss_equals_advantage_weighted_step_by_step_log_probs(xe_run, tmp_path):
    task = scst_task(xe_run, tmp_path / "a")
    task.setup()
    model = task.build_model()
    model.load_state_dict(torch.load(xe_run / "xe" / "best.pt", weights_only=True)["model"])
    model.train()
    batch = task.collate([task.train_dataset()[i] for i in range(6)])
    torch.manual_seed(7)
    loss_sum, count = scst_loss(model, batch, torch.device("cpu"), task.vocab, task.reward, task.cfg.scst)
    assert all(m.training for m in model.modules() if isinstance(m, torch.nn.Dropout))  # restored

    # the reference: the same samples, rewards by hand, log p by the decoders' step-by-step scorer
    torch.manual_seed(7)
    seed = int(torch.randint(0, 2 ** 62, (1,)).item())
    model.eval()
    with torch.no_grad():
        feats = batch["visual"]  # cached CNN features (frozen encoder)
        state = model.init_state(feats)
        tokens, logp, finished = sample_n(model.step, state, bos=task.vocab.bos, eos=task.vocab.eos,
                                          max_len=10, n=4, temperature=1.0, seed=seed)
        tokens = tokens.view(24, 10)
        lengths = (tokens != PAD).sum(1) - finished.view(24).long()  # words, without the EOS
        words = tokens.clamp(min=0) * (tokens != PAD)
        ref_logp = score_sequences(model.step, model.init_state(feats.repeat_interleave(4, 0)), words,
                                   lengths, bos=task.vocab.bos, eos=task.vocab.eos, with_eos=finished.view(24))
    torch.testing.assert_close(ref_logp, logp.view(24), rtol=1e-5, atol=1e-4)
    images = batch["images"].repeat_interleave(4).tolist()
    caps = [task.vocab.decode(row[row != PAD].tolist()).split() for row in tokens]
    reward = torch.tensor(task.reward.scores(images, caps), dtype=torch.float64).view(6, 4)
    advantage = reward - (reward.sum(1, keepdim=True) - reward) / 3
    expected = -(advantage.view(24) * ref_logp).sum()
    assert count == int((tokens != PAD).sum())
    assert float(loss_sum.detach()) == pytest.approx(float(expected), rel=1e-4, abs=1e-4)


def test_training_raises_the_reward_of_samples(xe_run, tmp_path):
    """A few self-critical steps on one batch raise the mean CIDEr-D of fresh samples (a sign error
    in the loss would lower it)."""
    task = scst_task(xe_run, tmp_path / "b")
    task.setup()
    model = task.build_model()
    model.load_state_dict(torch.load(xe_run / "xe" / "best.pt", weights_only=True)["model"])
    batch = task.collate([task.train_dataset()[i] for i in range(8)])
    cfg = SCSTConfig(samples=16, max_len=10)

    def mean_reward():
        model.eval()
        with torch.no_grad():
            tokens, _, _ = sample_n(model.step, model.init_state(batch["visual"]), bos=task.vocab.bos,
                                    eos=task.vocab.eos, max_len=10, n=64, temperature=1.0, seed=123)
        caps = [task.vocab.decode(r[r != PAD].tolist()).split() for r in tokens.view(-1, 10)]
        return sum(task.reward.scores(batch["images"].repeat_interleave(64).tolist(), caps)) / len(caps)

    before = mean_reward()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(15):
        model.train()
        loss_sum, count = scst_loss(model, batch, torch.device("cpu"), task.vocab, task.reward, cfg)
        opt.zero_grad()
        (loss_sum / count).backward()
        opt.step()
    assert mean_reward() > before + 0.05


def test_fit_runs_a_second_stage_from_the_first(xe_run, tmp_path):
    task = scst_task(xe_run, tmp_path / "c", epochs=1, max_steps_per_epoch=2, lr=1e-12)
    summary = fit(task)
    first = torch.load(xe_run / "xe" / "best.pt", weights_only=True)
    second = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert second["extra"]["vocab"] == first["extra"]["vocab"]     # the first stage's vocabulary
    for k, v in first["model"].items():                            # its weights (lr ~ 0: unchanged)
        torch.testing.assert_close(second["model"][k], v, rtol=1e-6, atol=1e-6)
    assert summary["history"][0]["val"]["CIDEr"] >= 0


def test_init_from_errors_name_the_setting(xe_run, tmp_path):
    bad = tiny_caption_recipe(tmp_path / "d", **stage(xe_run), model={"hidden": 48},
                              train={"init_from": str(xe_run / "xe" / "best.pt")})
    with pytest.raises(UserError, match="train.init_from=.*do not fit"):
        fit(load_task(data=bad))
    missing = tiny_caption_recipe(tmp_path / "e", train={"init_from": str(tmp_path / "nope.pt")})
    with pytest.raises(UserError, match="not found"):
        fit(load_task(data=missing))


def test_bad_scst_settings():
    with pytest.raises(ValueError, match="scst.samples"):
        SCSTConfig(samples=1)
    with pytest.raises(ValueError, match="scst.temperature"):
        SCSTConfig(samples=2, temperature=0)
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="scst.meteor"):
            SCSTConfig(samples=2, meteor=bad)


FLICKR_LIKE = [  # image -> reference captions (tokenized); samples below are other images' references
    ["a dog runs across the grass", "a brown dog is running on a lawn", "the dog plays outside"],
    ["two children play in the water", "kids splash in a pool", "a boy and a girl are swimming"],
    ["a man rides a bike down a hill", "a cyclist goes down a dirt road", "a person riding a bicycle"],
]


def test_meteor_reward_is_cider_d_plus_weight_times_the_official_meteor():
    """reward = CIDEr-D (training-corpus document frequencies) + w * METEOR 1.5 of the sample against
    its image's references, equal to the pycocoevalcap-compatible scorer image by image (samples made
    of reference sentences: the paraphrase entries are then the same); w = 0 is CIDEr-D alone."""
    from captionkit.metrics.cider_reward import CiderD
    from captionkit.metrics.meteor import meteor_score
    from captionkit.tasks.caption_scst import Reward

    corpus = [[c.split() for c in refs] for refs in FLICKR_LIKE]
    images = [0, 0, 1, 1, 2, 2]
    captions = [corpus[1][0], corpus[0][2], corpus[1][1], corpus[2][0], corpus[2][2], []]  # last: empty
    cider = CiderD(corpus).scores(images, captions)
    assert Reward(corpus).scores(images, captions) == cider
    gts = {k: [" ".join(r) for r in corpus[i]] for k, i in enumerate(images)}
    res = {k: [" ".join(c)] for k, c in enumerate(captions)}
    _, meteor = meteor_score(gts, res, workers=1)
    got = Reward(corpus, meteor=2.5).scores(images, captions)
    assert got == pytest.approx([c + 2.5 * m for c, m in zip(cider, meteor)], rel=1e-12, abs=1e-12)
    assert got[1] > cider[1] and got[-1] == cider[-1] == 0.0  # an empty sample earns nothing


@pytest.mark.parametrize("arch", ["lrcn", "attention"])
def test_one_run_is_cross_entropy_then_self_critical(arch, tmp_path):
    """scst.after_epochs = 1: epoch 0 trains on the cross-entropy of the references, later epochs on
    the self-critical loss of the model's own samples (for both captioner families)."""
    import torch.nn.functional as F
    from test_attention_captioner import attention_recipe

    if arch == "attention":
        recipe = attention_recipe(tmp_path)
        recipe["model"]["attention"]["penalty"] = 0.0
    else:
        recipe = tiny_caption_recipe(tmp_path / "run", **stage(tmp_path))
        recipe["data"]["group_captions"] = True
    recipe["scst"] = {"samples": 3, "max_len": 8, "after_epochs": 1}
    task = load_task(data=recipe)
    task.setup()
    model = task.build_model().train()
    batch = task.collate([task.train_dataset()[i] for i in range(4)])
    cpu = torch.device("cpu")

    task.begin_epoch(0)
    xe_sum, xe_count = task.loss(model, batch, cpu)
    out = model(batch["visual"], batch["inp"], batch["index"])
    logits = out[0] if isinstance(out, tuple) else out
    expected = F.cross_entropy(logits.flatten(0, 1), batch["tgt"].flatten(), ignore_index=task.vocab.pad,
                               reduction="sum")
    torch.testing.assert_close(xe_sum, expected)
    assert int(xe_count) == int((batch["tgt"] != task.vocab.pad).sum())

    task.begin_epoch(1)
    torch.manual_seed(3)
    sc_sum, sc_count = task.loss(model, batch, cpu)
    torch.manual_seed(3)
    ref_sum, ref_count = scst_loss(model, batch, cpu, task.vocab, task.reward, task.cfg.scst)
    torch.testing.assert_close(sc_sum, ref_sum)
    assert int(sc_count) == int(ref_count)
    sc_sum.backward()  # the self-critical gradient reaches the captioner
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_after_epochs_must_be_a_whole_number():
    with pytest.raises(ValueError, match="scst.after_epochs"):
        SCSTConfig(samples=2, after_epochs=-1)
    assert not SCSTConfig(samples=2, after_epochs=2).active(1) and SCSTConfig(samples=2, after_epochs=2).active(2)
    assert not SCSTConfig(samples=0).active(5)
