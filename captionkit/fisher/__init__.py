"""Encoders of sets and sequences into fixed-length vectors (Fisher vectors and their baselines).

  rnn.py    RNN Fisher Vectors (Lev et al., ECCV 2016): closed-form gradients of a sentence/frame LM
  gmm.py    GMM Fisher vectors and the mean-vector baseline
  video.py  RNN-FV pooling of frame features for activity recognition, beside mean pooling

Every encoder has one shape: fit on training sets, then ``encode`` sets -> (N, F) in closed form,
batched; autograd references live only in tests.
"""
