"""FV-VAE (Qiu et al.): closed-form decoder gradients equal autograd's, the VAE fits, the baselines on
hand-made sets with known answers, descriptor extraction (SPP, normalisation, batching)."""
import math

import pytest
import torch

from captionkit.fisher import pooling
from captionkit.fisher.descriptors import (DescriptorPCA, encoder_maps, grid_to_maps, normalise,
                                           sample_descriptors, spp_descriptors, video_descriptors,
                                           videos_descriptors)
from captionkit.fisher.encode import KINDS, SetEncoder, SetEncoderConfig, output_dim
from captionkit.fisher.vae import FVNormalizer, FVVAE, VAEConfig, fisher_vectors, fisher_vectors_autograd, train_vae


@pytest.mark.parametrize("decoder", ["relu", "linear"])
@pytest.mark.parametrize("sigma_x", ["scalar", "channel"])
def test_closed_form_fv_equals_autograd(decoder, sigma_x):
    torch.manual_seed(0)
    model = FVVAE(VAEConfig(latent=4, decoder=decoder, sigma_x=sigma_x), in_dim=6)
    with torch.no_grad():
        model.log_sigma_x.copy_(torch.randn(model.log_sigma_x.shape) * 0.3)  # sigma_x != 1
        model.decoder.bias.copy_(torch.randn(6) * 0.5)
    sets = torch.randn(5, 7, 6).abs()
    closed = fisher_vectors(model, sets, batch_size=2)
    assert closed.shape == (5, model.fv_dim) == (5, 6 * 5)
    torch.testing.assert_close(closed, fisher_vectors_autograd(model, sets), atol=1e-5, rtol=1e-4)
    if decoder == "relu":  # the mask matters: some outputs are inactive on this data
        mu = model.decoder(model.encoder(sets))
        assert (mu <= 0).any() and (mu > 0).any()


def test_fv_of_a_set_is_the_sum_over_its_descriptors():
    torch.manual_seed(0)
    model = FVVAE(VAEConfig(latent=3), in_dim=5)
    sets = torch.rand(2, 4, 5)
    per_descriptor = fisher_vectors(model, sets.reshape(8, 1, 5)).view(2, 4, -1).sum(1)
    torch.testing.assert_close(fisher_vectors(model, sets), per_descriptor, atol=1e-6, rtol=1e-5)


def test_vae_overfits_a_tiny_descriptor_set():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    protos = torch.rand(3, 8, generator=g) * 2  # three classes of nonnegative descriptors
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    sets = protos[labels].unsqueeze(1) + 0.02 * torch.randn(6, 5, 8, generator=g)  # (6, 5, 8)
    model = FVVAE(VAEConfig(latent=4, dropout=0.0, steps=500, batch_sets=6, lambda_cls=1.0, optimizer="adam",
                            lr=1e-2), 8, num_classes=3)
    history = train_vae(model, sets, labels, progress=False, log=lambda s: None)
    assert history[-1] < history[0] - 5
    with torch.no_grad():
        x = sets.reshape(-1, 8)
        mu_z = model.encoder(x)
        mu_x, _ = model.decode(mu_z)
        rel_err = (mu_x - x).pow(2).mean() / (x - x.mean(0)).pow(2).mean()
        acc = (model.classifier(mu_z).argmax(1) == labels.repeat_interleave(5)).float().mean()
    assert rel_err < 0.2, rel_err
    assert acc == 1.0


def test_vae_multi_hot_labels_train():
    torch.manual_seed(0)
    sets = torch.rand(6, 3, 5)
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]])
    model = FVVAE(VAEConfig(latent=4, steps=3, batch_sets=2, lambda_cls=0.5), 5, num_classes=3)
    parts = model.loss(sets.reshape(-1, 5), labels.repeat_interleave(3, dim=0))
    assert {"rec", "reg", "cls", "total"} <= set(parts)
    train_vae(model, sets, labels, progress=False, log=lambda s: None)


def test_vae_starts_from_the_data_scale():
    sets = torch.randn(5, 4, 3) * torch.tensor([0.1, 0.2, 0.3]) + 2.0
    for sigma_x, shape in (("scalar", (1,)), ("channel", (3,))):
        model = FVVAE(VAEConfig(latent=2, steps=0, sigma_x=sigma_x), 3)
        train_vae(model, sets, progress=False, log=lambda s: None)
        x = sets.reshape(-1, 3)
        var = x.var(0) if sigma_x == "channel" else x.var(0).mean().view(1)
        assert model.log_sigma_x.shape == shape
        torch.testing.assert_close(model.log_sigma_x.exp().pow(2).detach(), var)
        torch.testing.assert_close(model.decoder.bias.detach(), x.mean(0))


def test_fisher_information_normalisation():
    torch.manual_seed(0)
    g = torch.randn(400, 5) @ torch.randn(5, 5)  # correlated coordinates
    full = FVNormalizer("full", eps=0.0).fit(g)
    white = g @ full.whiten
    torch.testing.assert_close(white.T @ white / 400, torch.eye(5), atol=1e-4, rtol=1e-4)
    diag = FVNormalizer("diag", eps=0.0).fit(g)
    torch.testing.assert_close((g * diag.whiten).pow(2).mean(0), torch.ones(5), atol=1e-5, rtol=1e-5)
    out = diag.transform(g)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(400))
    assert (out.sign() == g.sign()).all()  # signed square root keeps signs


# ---- baselines on hand-made sets -------------------------------------------------------------------

def test_average_concat_and_bilinear_pooling():
    sets = torch.arange(24.).view(2, 3, 4)
    torch.testing.assert_close(pooling.average_pool(sets), sets.mean(1))
    assert pooling.concat_pool(sets)[1].tolist() == list(range(12, 24))
    ref = torch.stack([sum(torch.outer(x, x) for x in s) / 3 for s in sets]).flatten(1)
    torch.testing.assert_close(pooling.bilinear_pool(sets, chunk=1), ref)


def test_vlad_residuals_with_known_centres():
    centres = torch.tensor([[0., 0.], [10., 10.]])
    sets = torch.tensor([[[1., 0.], [0., 2.], [11., 9.]],       # two near c0, one near c1
                         [[9., 10.], [10., 12.], [10., 10.]]])  # all near c1
    out = pooling.vlad(sets, centres).view(2, 2, 2)
    assert out[0].tolist() == [[1., 2.], [1., -1.]]
    assert out[1].tolist() == [[0., 0.], [-1., 2.]]


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    truth = torch.tensor([[0., 0.], [5., 0.], [0., 5.]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in truth])
    found = pooling.kmeans(x, 3, log=lambda s: None)
    dist = torch.cdist(found, truth)  # (3, 3)
    assert dist.min(1).values.max() < 0.1 and sorted(dist.argmin(1).tolist()) == [0, 1, 2]


def test_gmm_fv_is_zero_for_descriptors_at_the_mean():
    enc = pooling.GMMFV(k=1, iters=5).fit(torch.randn(200, 3), log=lambda s: None)
    mu, sigma = enc.gmm.means[0], enc.gmm.sigmas[0]
    # x = mu +- sigma: residuals cancel (G_mu = 0) and ((x - mu) / sigma)^2 - 1 = 0 (G_sigma = 0)
    sets = torch.stack([mu + sigma, mu - sigma]).unsqueeze(0)  # (1, 2, 3)
    torch.testing.assert_close(enc.encode(sets), torch.zeros(1, 6), atol=1e-5, rtol=0)


# ---- descriptors ------------------------------------------------------------------------------------

def test_spp_on_a_hand_made_map():
    m = torch.arange(36.).view(1, 1, 6, 6)
    d = spp_descriptors(m)  # (1, 50, 1)
    assert d.shape == (1, 50, 1)
    assert d[0, :36, 0].tolist() == list(range(36))                      # 6x6: the map itself
    assert d[0, 36:45, 0].tolist() == [7., 9., 11., 19., 21., 23., 31., 33., 35.]  # 3x3: 2x2-block maxima
    assert d[0, 45:49, 0].tolist() == [14., 17., 32., 35.]               # 2x2: quadrant maxima
    assert d[0, 49, 0].item() == 35.                                      # 1x1: global maximum
    frames = torch.stack([m[0], -m[0]])  # (2, 1, 6, 6): averaged over frames
    torch.testing.assert_close(video_descriptors(frames), (spp_descriptors(m)[0] + spp_descriptors(-m)[0]) / 2)


def test_grid_to_maps_inverts_the_grid_layout():
    maps = torch.randn(2, 3, 4, 4)
    grid = maps.flatten(2).transpose(1, 2)  # encoders.Pool("grid")
    torch.testing.assert_close(grid_to_maps(grid), maps)


def test_descriptor_normalisations():
    x = torch.rand(3, 5, 4) + 0.1
    torch.testing.assert_close(normalise(x, "l2").norm(dim=2), torch.ones(3, 5))
    torch.testing.assert_close(normalise(x, "map").flatten(1).norm(dim=1), torch.full((3,), math.sqrt(5)))
    torch.testing.assert_close(normalise(x.half(), "none"), x.half().float())


def test_descriptor_pca_and_sampling():
    g = torch.Generator().manual_seed(0)
    sets = torch.randn(10, 6, 4, generator=g) * torch.tensor([5., 1., 0.1, 0.01])
    pts = sample_descriptors(sets, 30, "none", seed=1)
    assert pts.shape == (30, 4) and all(any((p == r).all() for r in sets.reshape(-1, 4)) for p in pts)
    assert sample_descriptors(sets, 0, "none").shape == (60, 4)
    pca = DescriptorPCA(2).fit(sets.reshape(-1, 4))
    out = pca.transform(sets, chunk=3)
    assert out.shape == (10, 6, 2)
    assert pca.components[:, 0].abs().argmax() == 0 and pca.components[:, 1].abs().argmax() == 1


def _grid_encoder():
    from captionkit.encoders import EncoderConfig, build_image_encoder
    torch.manual_seed(0)
    return build_image_encoder(EncoderConfig(name="mobilenet_v2", pool="grid", image_size=64)).eval()


def test_extraction_batched_equals_one_by_one():
    enc = _grid_encoder()
    images = torch.randn(3, 3, 64, 64)
    batched = encoder_maps(enc, images, batch_size=3)
    assert batched.shape == (3, 1280, 2, 2)
    alone = torch.cat([encoder_maps(enc, images[i:i + 1], batch_size=1) for i in range(3)])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    g = torch.Generator().manual_seed(0)
    videos = [torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8) for n in (4, 3)]
    together = videos_descriptors(enc, videos, batch_size=4)
    assert together.shape == (2, 50, 1280)
    one = torch.cat([videos_descriptors(enc, [v], batch_size=1) for v in videos])
    torch.testing.assert_close(together, one, atol=1e-5, rtol=1e-4)
    sampled = videos_descriptors(enc, videos[:1], frames=2)  # frames 0 and 3 of 4
    torch.testing.assert_close(sampled, videos_descriptors(enc, [videos[0][[0, 3]]]), atol=1e-6, rtol=0)


# ---- the shared pipeline ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_set_encoder_shapes_and_batch_independence(kind):
    torch.manual_seed(0)
    train, test = torch.rand(12, 9, 10).half(), torch.rand(5, 9, 10).half()
    cfg = SetEncoderConfig(kind=kind, pca_dim=4, k=3, fit_points=60, iters=5,
                           vae=VAEConfig(latent=3, steps=3, batch_sets=4, decoder="linear"))
    enc = SetEncoder(cfg).fit(train, progress=False, log=lambda s: None)
    out = enc.encode(test)
    assert out.shape == (5, output_dim(cfg, 9, 10))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(enc.encode(test, chunk=2), out, atol=1e-5, rtol=1e-4)


def test_set_encoder_rejects_bad_settings():
    with pytest.raises(ValueError, match="kind"):
        SetEncoderConfig(kind="sift")
    with pytest.raises(ValueError, match="norm"):
        SetEncoderConfig(norm="l3")
    with pytest.raises(ValueError, match="decoder"):
        VAEConfig(decoder="sigmoid")


# ---- the retrieval image side -------------------------------------------------------------------------

def test_keyword_labels_are_multi_hot_over_frequent_content_words():
    from captionkit.data.captions import CaptionItem
    from captionkit.tasks.retrieve import keyword_labels
    items = [CaptionItem("a", "a.jpg", ["A dog runs.", "The dog is brown"]),
             CaptionItem("b", "b.jpg", ["A man and a dog", "man rides a bike"]),
             CaptionItem("c", "c.jpg", ["two men ride bikes"])]
    labels = keyword_labels(items, 2)  # "dog" (2 images), then "bike" (ties at 1 image: alphabetical)
    assert labels.shape == (3, 2)
    assert labels.T.tolist() == [[1, 1, 0], [0, 1, 0]]  # stopwords ("a", "the", "is") never count


def test_image_vectors_with_a_set_encoder(monkeypatch):
    from captionkit.data.captions import CaptionItem
    from captionkit.tasks import retrieve
    grids = {f"i{k}": torch.rand(4, 12).half() for k in range(10)}
    monkeypatch.setattr(retrieve, "image_features",
                        lambda cfg, items, log=print, pool="avg": torch.stack([grids[it.image_id] for it in items]))
    items = [CaptionItem(f"i{k}", f"{k}.jpg", [f"dog number {k}", "a cat"]) for k in range(10)]
    cfg = retrieve.RetrieveConfig(image_encoder="sets", keywords=3, image=SetEncoderConfig(
        kind="fvvae", pca_dim=3, fit_points=40, vae=VAEConfig(latent=2, steps=2, batch_sets=4, lambda_cls=1.0)))
    a, b, info = retrieve.image_vectors(cfg, items[:7], items[7:], log=lambda s: None)
    assert a.shape == (7, 9) and b.shape == (3, 9) and info["dim"] == 9 and info["descriptors"] == [4, 12]
    with pytest.raises(ValueError, match="image_encoder"):
        retrieve.RetrieveConfig(image_encoder="pixels")


@pytest.mark.parametrize("name", ["fvvae", "fvvae_kw", "imgenc_average", "imgenc_bilinear", "imgenc_concat",
                                  "imgenc_gmmfv", "imgenc_vlad"])
def test_fvvae_recipes_load(name):
    from pathlib import Path

    from captionkit.config import load_config
    from captionkit.tasks.retrieve import RetrieveConfig
    recipe = Path(__file__).resolve().parents[1] / "recipes" / f"retrieve_flickr8k_{name}.toml"
    cfg = load_config(RetrieveConfig, recipe)
    assert cfg.image_encoder == "sets" and cfg.method == "gmmfv"
    assert (cfg.keywords > 0) == (cfg.image.vae.lambda_cls > 0)
