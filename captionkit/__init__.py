"""captionkit: LRCN (Donahue et al.) captioning, video description and activity recognition,
RNN Fisher Vectors (Lev et al.) and image-sentence retrieval, in PyTorch."""

__version__ = "0.1.0"
