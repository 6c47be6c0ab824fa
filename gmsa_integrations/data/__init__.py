"""Data: the synthetic world generator, the offline prose extractor, JSON Lines rows for training and
evaluation, corpora for indexing, and the demo's bundled corpus and questions (``demo_data/``)."""
