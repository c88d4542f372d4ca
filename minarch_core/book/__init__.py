"""The book: figures, chapter records and context, and the papermill + Jupyter Book pipeline."""
