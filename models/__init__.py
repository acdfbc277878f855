"""Model code with no session handling: the synthetic listening model, Word2Vec, clustering and
ALS wrappers, the torch LSTM, training loops, data feeds and export."""
