"""Kedro datasets of fly64-kedro: every save goes to a temporary sibling first, then is renamed into place."""

from fly64_kedro.datasets.figure_dataset import FigureDataset
from fly64_kedro.datasets.npz_dataset import NPZDataset
from fly64_kedro.datasets.text_datasets import CSVDataset, JSONDataset, TextDataset

__all__ = ["CSVDataset", "FigureDataset", "JSONDataset", "NPZDataset", "TextDataset"]
