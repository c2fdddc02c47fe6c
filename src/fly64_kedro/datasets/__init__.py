"""Kedro datasets of fly64-kedro."""

from fly64_kedro.datasets.figure_dataset import FigureDataset
from fly64_kedro.datasets.npz_dataset import NPZDataset

__all__ = ["FigureDataset", "NPZDataset"]
