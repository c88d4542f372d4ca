"""The analyses: read the run store, return tidy tables (regimes, pruning, quantization); they import the engine."""
