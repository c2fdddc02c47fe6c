"""Comparison (spec section 7): one alignment for every model, amplitude and phase metrics, tables, figures,
and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fly64_kedro.metrics.alignment import align_to_truth
from fly64_kedro.metrics.image_quality import complex_metrics, frc
from fly64_kedro.record import Record
from fly64_kedro.study import LSQML_NAME, MODEL_NAMES, PINN_VARIANTS

logger = logging.getLogger(__name__)

METRICS = ("mae", "rmse", "psnr", "ssim", "ms_ssim", "frc50", "frc_half_bit")
PINN_NAMES = tuple(v.name for v in PINN_VARIANTS)


def compare_job(base: Record, comparison: dict[str, Any], *results: Record) -> tuple[dict[str, Any], Figure]:
    """Align every reconstruction of one dose/view/split to the ground truth with the same procedure and score it.

    Returns the job's rows (model, metric, amplitude, phase, registration shift in px, reconstruction time in s),
    FRC curves, model statuses, and a figure of ground truth vs each model (shared colour scales).
    """
    truth = base["objectGuess"]
    margin = int(comparison["crop_margin"])
    rows: list[dict[str, Any]] = []
    curves: dict[str, Any] = {}
    statuses: dict[str, dict[str, str]] = {}
    panels: list[tuple[str, np.ndarray, np.ndarray]] = []
    where: dict[str, Any] = {}
    for result in results:
        name = MODEL_NAMES[result.meta["method"]]
        where = {k: result.meta.get(k) for k in ("dose", "view", "split")}
        statuses[name] = {"status": result.status, "reason": str(result.meta.get("reason", ""))}
        if result.status != "ok":
            continue
        aligned = align_to_truth(
            truth, result["object"], result["ycoords"], result["xcoords"], int(result.meta["N"]), margin,
            max_shift=float(comparison["max_shift"]),
        )
        scores = complex_metrics(aligned)
        seconds = result.meta.get("inference_s", result.meta.get("wall_time_s"))
        for metric in METRICS:
            rows.append(
                {
                    "model": name, **where, "metric": metric,
                    "amplitude": scores["amplitude"][metric], "phase": scores["phase"][metric],
                    "shift_y": aligned.shift[0], "shift_x": aligned.shift[1],
                    "registered_shift_y": aligned.registered_shift[0], "registered_shift_x": aligned.registered_shift[1],
                    "recon_time_s": seconds, "device": result.meta.get("device"),
                }
            )
        amp_t, amp_r = np.abs(aligned.truth), aligned.amplitude_scale * np.abs(aligned.recon)
        freq, frc_amp = frc(amp_t, amp_r)
        _, frc_phase = frc(np.angle(aligned.truth), np.angle(aligned.recon))
        curves[name] = {"freq": freq.tolist(), "amplitude": frc_amp.tolist(), "phase": frc_phase.tolist()}
        if not panels:
            panels.append(("ground truth", np.abs(aligned.truth), np.angle(aligned.truth)))
        panels.append((name, amp_r, np.angle(aligned.recon)))
    title = f"dose {where.get('dose', 0):g}, {where.get('view')} view, {where.get('split')} split"
    return {**where, "rows": rows, "frc": curves, "statuses": statuses}, _job_figure(panels, title, statuses)


def _job_figure(panels: list[tuple[str, np.ndarray, np.ndarray]], title: str, statuses: dict[str, dict[str, str]]) -> Figure:
    """Ground truth next to each model, amplitude (top) and phase (bottom), colour scales shared per row."""
    fig = Figure(figsize=(3.2 * max(len(panels), 1), 6.4), layout="constrained")
    fig.suptitle(title + "".join(f"\n{m}: {s['status']} ({s['reason'][:80]})" for m, s in statuses.items() if s["status"] != "ok"))
    if not panels:
        return fig
    axes = fig.subplots(2, len(panels), squeeze=False)
    amp_range = (float(panels[0][1].min()), float(panels[0][1].max()))
    for col, (name, amp, phase) in enumerate(panels):
        im_a = axes[0, col].imshow(amp, cmap="gray", vmin=amp_range[0], vmax=amp_range[1])
        im_p = axes[1, col].imshow(phase, cmap="twilight", vmin=-np.pi, vmax=np.pi)
        axes[0, col].set_title(name)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("amplitude")
    axes[1, 0].set_ylabel("phase (rad)")
    fig.colorbar(im_a, ax=axes[0, :].tolist(), shrink=0.8)
    fig.colorbar(im_p, ax=axes[1, :].tolist(), shrink=0.8)
    return fig


def build_metrics_table(*jobs: dict[str, Any]) -> pd.DataFrame:
    """The tidy metrics table of the whole study: model, dose, view, split, metric, amplitude, phase, ..."""
    rows = [row for job in jobs for row in job["rows"]]
    columns = ["model", "dose", "view", "split", "metric", "amplitude", "phase", "shift_y", "shift_x",
               "registered_shift_y", "registered_shift_x", "recon_time_s", "device"]
    table = pd.DataFrame(rows, columns=columns).sort_values(["dose", "view", "split", "model", "metric"])
    return table.reset_index(drop=True)


def compute_deltas(table: pd.DataFrame) -> pd.DataFrame:
    """PtychoPINN variant minus pty-chi LSQML for every dose/view/split/metric both have (amplitude and phase)."""
    keys = ["dose", "view", "split", "metric"]
    base = table[table["model"] == LSQML_NAME].set_index(keys)[["amplitude", "phase"]]
    frames = []
    for name in PINN_NAMES:
        pinn = table[table["model"] == name].set_index(keys)[["amplitude", "phase"]]
        joined = pinn.merge(base, left_index=True, right_index=True, suffixes=("_pinn", "_lsqml"))
        if joined.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "delta_amplitude": joined["amplitude_pinn"] - joined["amplitude_lsqml"],
                    "delta_phase": joined["phase_pinn"] - joined["phase_lsqml"],
                }
            ).reset_index()
        )
    columns = ["model", *keys, "delta_amplitude", "delta_phase"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def plot_metrics_vs_dose(table: pd.DataFrame) -> Figure:
    """Each metric (rows) vs dose for amplitude and phase (columns); one line per model and view, test split."""
    test = table[table["split"] == "test"]
    fig = Figure(figsize=(11, 2.6 * len(METRICS)), layout="constrained")
    axes = fig.subplots(len(METRICS), 2, squeeze=False)
    for row, metric in enumerate(METRICS):
        for col, part in enumerate(("amplitude", "phase")):
            ax = axes[row, col]
            sub = test[test["metric"] == metric]
            for (model, view), line in sub.groupby(["model", "view"]):
                line = line.sort_values("dose")
                ax.plot(line["dose"], line[part], marker="o", label=f"{model} / {view}")
            ax.set_xscale("log")
            ax.set_title(f"{metric} ({part}), test split")
            ax.set_xlabel("dose (photons per pattern)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig


def plot_frc_curves(*jobs: dict[str, Any]) -> Figure:
    """Amplitude FRC curves of every model, one panel per dose and view (test split), with the 0.5 line."""
    tests = [job for job in jobs if job.get("split") == "test" and job["frc"]]
    fig = Figure(figsize=(4 * max(len(tests), 1), 3.4), layout="constrained")
    if not tests:
        return fig
    axes = fig.subplots(1, len(tests), squeeze=False)[0]
    for ax, job in zip(axes, tests):
        for name, curve in job["frc"].items():
            ax.plot(curve["freq"], curve["amplitude"], label=name)
        ax.axhline(0.5, color="k", lw=0.8, ls="--")
        ax.set_ylim(-0.1, 1.05)
        ax.set_title(f"dose {job['dose']:g}, {job['view']}")
        ax.set_xlabel("spatial frequency (cycles/px)")
    axes[0].set_ylabel("FRC (amplitude)")
    axes[0].legend(fontsize=7)
    return fig


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """MS-SSIM amplitude/phase per dose, view and model (test split): the study's headline numbers."""
    sub = table[(table["metric"] == "ms_ssim") & (table["split"] == "test")]
    return sub.pivot_table(index=["dose", "view"], columns="model", values=["amplitude", "phase"]).round(3)


def _log_summary(table: pd.DataFrame) -> None:
    """One log line per dose and view: MS-SSIM (amplitude / phase) of every model on the test split."""
    sub = table[(table["metric"] == "ms_ssim") & (table["split"] == "test")]
    logger.info("study summary: MS-SSIM amplitude / phase, test split")
    for (dose, view), rows in sub.groupby(["dose", "view"]):
        cells = ", ".join(f"{r.model} {r.amplitude:.3f} / {r.phase:.3f}" for r in rows.itertuples())
        logger.info("  dose %-6g %-6s %s", dose, view, cells)


def _img(png: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render_report(
    table: pd.DataFrame,
    deltas: pd.DataFrame,
    overlap_manifest: pd.DataFrame,
    reconstruction_manifest: pd.DataFrame,
    metrics_figure: bytes,
    frc_figure: bytes,
    *job_figures: bytes,
) -> str:
    """One self-contained HTML page (PNG figures inlined) with the study's tables and figures; logs the summary."""
    summary = summary_table(table)
    _log_summary(table)
    figures = "".join(_img(png) for png in job_figures)
    sections = [
        ("Summary: MS-SSIM, test split", summary.to_html()),
        ("Metrics vs dose", _img(metrics_figure)),
        ("FRC curves (amplitude)", _img(frc_figure)),
        ("PtychoPINN minus pty-chi LSQML", deltas.round(4).to_html(index=False)),
        ("Reconstruction jobs", reconstruction_manifest.round(3).to_html(index=False)),
        ("Overlap views", overlap_manifest.round(4).to_html(index=False)),
        ("All metrics", table.round(4).to_html(index=False)),
        ("Ground truth vs reconstructions", figures),
    ]
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}" \
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>fly64 study report</title><style>{style}</style>"
        f"</head><body><h1>fly64 dose/overlap study</h1>{body}</body></html>"
    )
