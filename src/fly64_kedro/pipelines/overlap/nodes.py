"""Overlap views (docs/science.md "Overlap views"): dense and sparse subsets of each split by minimum scan spacing."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from fly64_kedro.geometry.overlap_metrics import group_overlap, image_overlap
from fly64_kedro.geometry.selection import geometric_acceptance_bound, scan_area, select_view, spacing_statistics
from fly64_kedro.record import Record, subset
from fly64_kedro.study import spacing

logger = logging.getLogger(__name__)


def view_summary(view: Record) -> dict[str, Any]:
    """One manifest row for a view: counts, status and the selection fields of its metadata."""
    keys = (
        "dose_label",
        "split",
        "view",
        "status",
        "reason",
        "selection_strategy",
        "acceptance_rate",
        "direct_acceptance_rate",
        "acceptance_bound",
        "spacing_threshold",
        "n_accepted",
        "n_rejected",
        "spacing_min",
        "spacing_max",
        "spacing_mean",
        "spacing_median",
        "image_overlap",
        "group_overlap",
    )
    row = {k: view.meta[k] for k in keys if k in view.meta}
    row.setdefault("status", "ok")
    row["n_positions"] = len(view["xcoords"])
    row["dose"] = view.meta.get("dose")
    return row


def overlap_metrics(ycoords: np.ndarray, xcoords: np.ndarray, study: dict[str, Any]) -> dict[str, float]:
    """Measured disc overlap (probe diameter D = N px): image-based over K neighbours, group-based for gridsize 2."""
    n_pix, pool = int(study["N"]), int(study["neighbour_pool"])
    return {
        "image_overlap": image_overlap(ycoords, xcoords, n_pix, k=pool),
        "group_overlap": group_overlap(
            ycoords,
            xcoords,
            n_pix,
            group_size=max(study["gridsizes"]) ** 2,
            pool_size=pool,
            seed=int(study["seeds"]["grouping"]),
        ),
    }


def select_overlap_view(
    full: Record, fraction: float, study: dict[str, Any], overlap: dict[str, Any], view: str
) -> tuple[Record, dict[str, Any]]:
    """Keep the positions of a split that are at least S = (1 - f) N px apart (direct, else greedy).

    A view with fewer than ``overlap.min_positions`` positions is marked ``status: skipped`` with its reason;
    reconstruction reads that and records the job as skipped instead of running it.
    """
    y, x = full["ycoords"], full["xcoords"]
    threshold = spacing(fraction, study["N"])
    selection = select_view(y, x, threshold, float(overlap["min_direct_rate"]))
    ky, kx = y[selection.mask], x[selection.mask]
    meta: dict[str, Any] = {
        "view": view,
        "overlap_fraction": float(fraction),
        "selection_strategy": selection.strategy,
        "acceptance_rate": selection.acceptance_rate,
        "direct_acceptance_rate": selection.direct_rate,
        "acceptance_bound": geometric_acceptance_bound(scan_area(y, x), len(y), threshold),
        "spacing_threshold": threshold,
        "n_accepted": selection.n_accepted,
        "n_rejected": selection.n_rejected,
        **spacing_statistics(ky, kx, seed=int(study["seeds"]["subsampling"])),
        **overlap_metrics(ky, kx, study),
        "status": "ok",
    }
    minimum = int(overlap["min_positions"])
    if selection.n_accepted < minimum:
        meta["status"] = "skipped"
        meta["reason"] = (
            f"{view} view keeps {selection.n_accepted} position(s) at S={threshold:.1f} px, fewer than "
            f"overlap.min_positions={minimum}"
        )
        logger.warning("%s %s: skipped: %s", full.meta.get("dose"), view, meta["reason"])
    result = subset(full, selection.mask, **meta)
    logger.info(
        "%s view of %s split (dose %s): %s kept %d/%d (rate %.4f, bound %.4f)",
        view,
        full.meta.get("split"),
        full.meta.get("dose"),
        selection.strategy,
        selection.n_accepted,
        len(y),
        selection.acceptance_rate,
        meta["acceptance_bound"],
    )
    return result, view_summary(result)


def full_view_summary(full: Record, study: dict[str, Any]) -> dict[str, Any]:
    """Manifest row of a full split, with its measured overlap, for comparison with the derived views."""
    return {**view_summary(full), **overlap_metrics(full["ycoords"], full["xcoords"], study)}


def build_overlap_manifest(*summaries: dict[str, Any]) -> pd.DataFrame:
    """One row per dose x view x split: status, counts, strategy, rates, bound, overlap, dataset name."""
    rows = [
        {**summary, "dataset": f"{summary['dose_label']}.{summary['view']}.{summary['split']}.ptycho"}
        for summary in summaries
    ]
    first = ["dose_label", "dose", "view", "split", "status", "n_positions", "selection_strategy"]
    frame = pd.DataFrame(rows)
    return frame[[c for c in first if c in frame] + [c for c in frame if c not in first]]
