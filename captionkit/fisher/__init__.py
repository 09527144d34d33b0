"""Encoders of sets and sequences into fixed-length vectors (Fisher vectors and their baselines).

  rnn.py    RNN Fisher Vectors (Lev et al., ECCV 2016): closed-form gradients of a sentence/frame LM
  gmm.py    GMM Fisher vectors and the mean-vector baseline
  video.py  RNN-FV pooling of frame features for activity recognition, beside mean pooling
  FV-VAE (Qiu, Yao & Mei, CVPR 2017) over CNN local descriptors:
  descriptors.py  K x K map positions (images), SPP descriptors (video frames), normalisation, PCA
  vae.py          the VAE and its closed-form decoder-gradient Fisher vectors, FIM normalisation
  pooling.py      baselines: average, concatenation, bilinear, VLAD (k-means), GMM-FV
  encode.py       descriptor sets -> normalised vectors with any of them (fit / encode)

Every encoder has one shape: fit on training sets, then ``encode`` sets -> (N, F) in closed form,
batched; autograd references live only in tests.
"""
