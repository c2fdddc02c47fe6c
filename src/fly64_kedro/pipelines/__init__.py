"""The study's modular pipelines: generation, overlap, reconstruction, comparison."""
