"""The engine: data, models, run configs, training, the run store, sweeps and profiles (imports nothing above it)."""
