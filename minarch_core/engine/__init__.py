"""The engine: data, models, run configs, training, the run store, sweeps and profiles (imports nothing above it).

Importing it imports the plugins that ``MINARCH_PLUGINS`` names (``settings.load_plugins``): families and grids
registered there exist in every process that runs minarch."""
from .settings import load_plugins as _load_plugins

_load_plugins()
