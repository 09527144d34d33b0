"""METEOR 1.5's parameters for English, the "rank" task (``-l en``; Denkowski & Lavie 2014, Sec. 2.2)."""
ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
WEIGHTS = (1.0, 0.6, 0.8, 0.6)          # module weights: exact, stem, synonym, paraphrase
