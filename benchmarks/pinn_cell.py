"""What the PINN benchmarks (pinn_spread.py, pinn_trace.py) share: the command line naming one study cell, the
project's PINN parameters with --set overrides, and the cell's views."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from kedro.config import OmegaConfigLoader

from fly64_kedro.datasets.npz_dataset import read_npz
from fly64_kedro.record import Record
from fly64_kedro.settings import CONFIG_LOADER_ARGS

HERE = Path(__file__).resolve().parent


def cell_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the cell's arguments: root (a finished study's data root), --dose, --view, --label, --set,
    --env."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("root", type=Path)
    parser.add_argument("--dose", default="d1e5")
    parser.add_argument("--view", default="full")
    parser.add_argument("--label", default="pinn_gs2", choices=("pinn_gs1", "pinn_gs2"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a PINN setting (YAML)")
    parser.add_argument("--env", default=None, help="Kedro configuration environment (default: base + local)")
    return parser


def parameters(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study parameters and the PINN settings (conf, then each --set KEY=VALUE read as YAML)."""
    params = OmegaConfigLoader(str(HERE.parent / "conf"), env=args.env, **CONFIG_LOADER_ARGS)["parameters"]
    pinn = dict(params["reconstruction"]["pinn"])
    for item in args.set:
        key, _, value = item.partition("=")
        pinn[key] = yaml.safe_load(value)
    return params["study"], pinn


def views(args: argparse.Namespace) -> tuple[Record, Record]:
    """The cell's train and test views (03_primary), checked against the data contract."""

    def one(split: str) -> Record:
        path = args.root / "03_primary" / args.dose / f"{args.view}_{split}.npz"
        return read_npz(str(path), str(path), "ptycho")

    return one("train"), one("test")
