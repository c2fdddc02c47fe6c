"""Comparison (docs/science.md "Comparison"): one alignment for every model and floor, the registry's metrics,
tables, figures,
and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import image as mpimg
from matplotlib.figure import Figure

from fly64_kedro.metrics.alignment import Alignment, align_to_truth, compared_region
from fly64_kedro.metrics.registry import METRICS, aligned_images, frc_curves, score
from fly64_kedro.physics.stitching import stitch_patches
from fly64_kedro.provenance import provenance
from fly64_kedro.record import Record
from fly64_kedro.study import ENGINES, ENGINES_BY_LABEL, MODEL_NAMES, REFERENCE, VIEWS

logger = logging.getLogger(__name__)

REFERENCE_NAME = ENGINES_BY_LABEL[REFERENCE].name
# Table order: the reference first, then the trained engines, larger groups first (the study's PtychoPINN, then gs1).
MODELS = (
    REFERENCE_NAME,
    *(e.name for e in sorted((e for e in ENGINES if e.label != REFERENCE), key=lambda e: -(e.gridsize or 0))),
)
FLAT = "flat"
TRUTH_PATCHES = "truth patches stitched"
FLOORS = (FLAT, TRUTH_PATCHES)
HEADLINE_METRICS = ("r2", "ms_ssim")
TABLE_COLUMNS = [
    "model",
    "dose",
    "view",
    "split",
    "metric",
    "amplitude",
    "phase",
    "kind",
    "shift_y",
    "shift_x",
    "registration",
    "amplitude_shift_y",
    "amplitude_shift_x",
    "phase_shift_y",
    "phase_shift_x",
    "recon_time_s",
    "device",
    "n_positions",
]


def dose_label(dose: float) -> str:
    """1000.0 -> '1e3'; a dose that is not a power of ten keeps its %g form."""
    exponent = math.log10(dose) if dose > 0 else math.nan
    return f"1e{round(exponent)}" if math.isfinite(exponent) and abs(exponent - round(exponent)) < 1e-9 else f"{dose:g}"


def floor_objects(view: Record, truth: np.ndarray, mean_amplitude: float) -> dict[str, np.ndarray]:
    """The reference "models" of one view: ``flat`` (mean amplitude, zero phase) and ``truth patches stitched``
    (the view's ground-truth patches Y stitched exactly as the PINN's are: the ceiling that stitching allows)."""
    stitched = stitch_patches(view["Y"], view["ycoords"], view["xcoords"], truth.shape, view["probeGuess"]).object
    return {FLAT: np.full(truth.shape, mean_amplitude, np.complex128), TRUTH_PATCHES: stitched}


def _is_training(record: Record) -> bool:
    """A PINN training record (weights and history) rather than a reconstruction."""
    return "weight_names" in record.meta or str(record.meta.get("job", "")).endswith(" training")


def _job_info(result: Record, training: Record | None = None) -> dict[str, Any]:
    """What the report shows per job: status, time, device, positions, and the convergence curves per epoch
    (LSQML: its loss; PINN: training and validation loss from the record, else from its training record)."""
    meta = result.meta
    source = meta if meta.get("history") or training is None else {**training.meta, **meta}
    if "loss" in result:
        curves = {"loss": [float(v) for v in result["loss"]]}
    else:
        history = source.get("history") or {}
        curves = {k: [float(v) for v in history[k]] for k in ("loss", "val_loss") if history.get(k)}
    positions = len(result["ycoords"]) if "ycoords" in result else meta.get("n_accepted")
    return {
        "model": MODEL_NAMES.get(meta.get("method", ""), meta.get("method")),
        "status": result.status,
        "reason": str(meta.get("reason", "")),
        "wall_time_s": meta.get("wall_time_s"),
        "inference_s": meta.get("inference_s"),
        "training_wall_time_s": meta.get("training_wall_time_s"),
        "device": meta.get("device"),
        "n_positions": positions,
        "epochs_run": source.get("epochs_run"),
        "stop_reason": source.get("stop_reason"),
        "curves": curves,
    }


def _rows(
    name: str, kind: str, where: dict[str, Any], aligned: Alignment, info: dict[str, Any]
) -> list[dict[str, Any]]:
    registration = aligned.registration
    amp_shift = registration.amplitude_shift or (None, None)
    phase_shift = registration.phase_shift or (None, None)
    scores = score(aligned)
    return [
        {
            "model": name,
            **where,
            "metric": metric.name,
            "amplitude": scores[metric.name]["amplitude"],
            "phase": scores[metric.name]["phase"],
            "kind": kind,
            "shift_y": aligned.shift[0],
            "shift_x": aligned.shift[1],
            "registration": registration.decision,
            "amplitude_shift_y": amp_shift[0],
            "amplitude_shift_x": amp_shift[1],
            "phase_shift_y": phase_shift[0],
            "phase_shift_x": phase_shift[1],
            "recon_time_s": info.get("inference_s") or info.get("wall_time_s"),
            "device": info.get("device"),
            "n_positions": info.get("n_positions"),
        }
        for metric in METRICS
    ]


def compare_job(
    base: Record, view: Record, comparison: dict[str, Any], *records: Record
) -> tuple[dict[str, Any], Figure, Figure]:
    """Align every reconstruction of one dose/view/split and the two floors to the ground truth with the same
    procedure, inside the view's compared region, and score them with the registry's metrics.

    ``records`` are the job's reconstructions and the PINN training records they came from (for convergence).

    Returns the job's rows, FRC curves, statuses and per-job information (time, device, positions, convergence),
    the image grid (truth, each model, each floor; shared colour scales; wrap-aligned phase) and the
    convergence figure.
    """
    truth = base["objectGuess"]
    where = {"dose": float(view.meta.get("dose", 0.0)), "view": view.meta.get("view"), "split": view.meta.get("split")}
    rows: list[dict[str, Any]] = []
    curves: dict[str, Any] = {}
    statuses: dict[str, dict[str, str]] = {}
    trainings = {r.meta.get("method"): r for r in records if _is_training(r)}
    results = [r for r in records if not _is_training(r)]
    jobs = [_job_info(result, trainings.get(result.meta.get("method"))) for result in results]
    panels: list[tuple[str, Alignment]] = []
    if view.status == "ok":
        region = compared_region(
            view["ycoords"], view["xcoords"], view["probeGuess"], truth.shape, int(comparison["crop_margin"])
        )
        options = {"max_shift": float(comparison["max_shift"]), "phase_plane": bool(comparison["phase_plane"])}
        mean_amplitude = float(np.abs(truth[region.rows, region.cols][region.mask]).mean())
        candidates = [
            (job["model"], "model", result["object"] if job["status"] == "ok" else None, job)
            for job, result in zip(jobs, results)
        ]
        floor_info = {"n_positions": len(view["ycoords"])}
        candidates += [
            (name, "floor", obj, floor_info) for name, obj in floor_objects(view, truth, mean_amplitude).items()
        ]
        for name, kind, obj, info in candidates:
            statuses[name] = {"status": info.get("status", "ok"), "reason": info.get("reason", "")}
            if obj is None:
                continue
            aligned = align_to_truth(truth, obj, region, **options)
            rows += _rows(name, kind, where, aligned, info)
            curves[name] = {**frc_curves(aligned), "kind": kind}
            panels.append((name, aligned))
    else:
        reason = f"view {view.status}: {view.meta.get('reason', '')}"
        statuses = {job["model"]: {"status": job["status"], "reason": job["reason"]} for job in jobs}
        statuses.update({name: {"status": "skipped", "reason": reason} for name in FLOORS})
    title = f"dose {dose_label(where['dose'])}, {where['view']} view, {where['split']} split"
    record = {**where, "rows": rows, "frc": curves, "statuses": statuses, "jobs": jobs}
    # One colour scale per quantity for every grid of the study: the whole truth's range.
    ranges = {
        "amplitude": (float(np.abs(truth).min()), float(np.abs(truth).max())),
        "phase": (float(np.angle(truth).min()), float(np.angle(truth).max())),
    }
    return record, _image_grid(panels, title, statuses, ranges), _convergence_figure(jobs, title)


def _masked(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, image, np.nan)  # unscored pixels are left blank


def _image_grid(
    panels: list[tuple[str, Alignment]],
    title: str,
    statuses: dict[str, dict[str, str]],
    ranges: dict[str, tuple[float, float]],
) -> Figure:
    """Ground truth, each model and each floor: amplitude (top) and wrap-aligned phase (bottom) on the compared
    region, with the colour ``ranges`` (shared by every grid)."""
    fig = Figure(figsize=(3.0 * (len(panels) + 1), 6.2), layout="constrained")
    notes = "".join(f"\n{m}: {s['status']} ({s['reason'][:80]})" for m, s in statuses.items() if s["status"] != "ok")
    fig.suptitle(title + notes)
    if not panels:
        return fig
    axes = fig.subplots(2, len(panels) + 1, squeeze=False)
    first = panels[0][1]
    (amp_t, _), (phase_t, _) = aligned_images(first)["amplitude"], aligned_images(first)["phase"]
    mask = first.mask
    columns = [("ground truth", amp_t, phase_t)]
    for name, aligned in panels:
        images = aligned_images(aligned)
        columns.append((name, images["amplitude"][1], images["phase"][1]))
    for col, (name, amp, phase) in enumerate(columns):
        im_a = axes[0, col].imshow(
            _masked(amp, mask), cmap="gray", vmin=ranges["amplitude"][0], vmax=ranges["amplitude"][1]
        )
        im_p = axes[1, col].imshow(
            _masked(phase, mask), cmap="viridis", vmin=ranges["phase"][0], vmax=ranges["phase"][1]
        )
        axes[0, col].set_title(name, fontsize=9)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("amplitude")
    axes[1, 0].set_ylabel("phase (rad, wrap-aligned)")
    fig.colorbar(im_a, ax=axes[0, :].tolist(), shrink=0.8)
    fig.colorbar(im_p, ax=axes[1, :].tolist(), shrink=0.8)
    return fig


def _convergence_figure(jobs: list[dict[str, Any]], title: str) -> Figure:
    """One panel per job: loss per epoch (LSQML), training and validation loss per epoch (PINN)."""
    fig = Figure(figsize=(3.6 * max(len(jobs), 1), 3.0), layout="constrained")
    fig.suptitle(f"convergence, {title}")
    if not jobs:
        return fig
    for ax, job in zip(fig.subplots(1, len(jobs), squeeze=False)[0], jobs):
        ax.set_title(job["model"], fontsize=9)
        ax.set_xlabel("epoch")
        if job["status"] != "ok" or not job["curves"]:
            text = f"{job['status']}: {job['reason'][:60]}" if job["status"] != "ok" else "no history recorded"
            ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes, fontsize=8)
            continue
        for key, values in job["curves"].items():
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=key)
        if all(v > 0 for values in job["curves"].values() for v in values):
            ax.set_yscale("log")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    return fig


def build_metrics_table(*jobs: dict[str, Any]) -> pd.DataFrame:
    """The tidy metrics table of the whole study: model, dose, view, split, metric, amplitude, phase, kind
    (model or floor), registration, time, device, positions. Complex metrics carry one value in both columns."""
    rows = [row for job in jobs for row in job["rows"]]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS).sort_values(["dose", "view", "split", "model", "metric"])
    return table.reset_index(drop=True)


def compute_deltas(table: pd.DataFrame) -> pd.DataFrame:
    """Every engine minus the reference engine (pty-chi LSQML) for every dose/view/split/metric both have
    (amplitude and phase)."""
    keys = ["dose", "view", "split", "metric"]
    base = table[table["model"] == REFERENCE_NAME].set_index(keys)[["amplitude", "phase"]]
    frames = []
    for name in MODELS[1:]:
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


def _line_style(kind: str) -> dict[str, Any]:
    return {"ls": "--", "marker": None, "lw": 1.0} if kind == "floor" else {"ls": "-", "marker": "o"}


def plot_metrics_vs_dose(table: pd.DataFrame) -> Figure:
    """Each registry metric (rows) vs dose for amplitude and phase (columns), test split; one line per model and
    view, floors dashed."""
    test = table[table["split"] == "test"]
    fig = Figure(figsize=(11, 2.6 * len(METRICS)), layout="constrained")
    axes = fig.subplots(len(METRICS), 2, squeeze=False)
    for row, metric in enumerate(METRICS):
        for col, part in enumerate(("amplitude", "phase")):
            ax = axes[row, col]
            sub = test[test["metric"] == metric.name]
            for (model, view, kind), line in sub.groupby(["model", "view", "kind"]):
                line = line.sort_values("dose")
                ax.plot(line["dose"], line[part], label=f"{model} / {view}", **_line_style(kind))
            ax.set_xscale("log")
            ax.set_title(f"{metric.label} ({part}), test split")
            ax.set_xlabel("dose (photons per pattern)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=4)
    return fig


def plot_frc_curves(*jobs: dict[str, Any]) -> Figure:
    """FRC of amplitude (top) and wrap-aligned phase (bottom) per model, one column per dose and view (test
    split), floors dashed, with the 0.5 line. The curves come from the same function as the table's FRC."""
    tests = [job for job in jobs if job.get("split") == "test" and job["frc"]]
    fig = Figure(figsize=(4 * max(len(tests), 1), 6.4), layout="constrained")
    if not tests:
        return fig
    axes = fig.subplots(2, len(tests), squeeze=False)
    for col, job in enumerate(tests):
        for row, part in enumerate(("amplitude", "phase")):
            ax = axes[row, col]
            for name, curve in job["frc"].items():
                ax.plot(curve["freq"], curve[part], label=name, **{**_line_style(curve["kind"]), "marker": None})
            ax.axhline(0.5, color="k", lw=0.8, ls=":")
            ax.set_ylim(-0.1, 1.05)
            ax.set_title(f"dose {dose_label(job['dose'])}, {job['view']}: {part}", fontsize=9)
            ax.set_xlabel("spatial frequency (cycles/px)")
    axes[0, 0].set_ylabel("FRC")
    axes[0, 0].legend(fontsize=7)
    return fig


def _number(value: float) -> str:
    """Three decimals, without the sign of a rounded zero (a flat floor's R2 of -1e-16 is 0.000)."""
    text = f"{value:.3f}"
    return text[1:] if text == "-0.000" else text


def headline_table(table: pd.DataFrame, jobs: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """R2 and MS-SSIM side by side ("amplitude / phase"), test split, per dose and view (rows) and model or floor
    (columns); cells where a model does not apply or did not run are empty, and the footnotes say why."""
    sub = table[(table["split"] == "test") & table["metric"].isin(HEADLINE_METRICS)]
    names = [*MODELS, *FLOORS]
    labels = {m.name: m.label for m in METRICS}
    footnotes: list[str] = []
    out_rows = []
    for job in sorted((j for j in jobs if j.get("split") == "test"), key=lambda j: (j["dose"], VIEWS.index(j["view"]))):
        cells: dict[tuple[str, str], str] = {}
        for name in names:
            status = job["statuses"].get(name)
            scores = sub[(sub["dose"] == job["dose"]) & (sub["view"] == job["view"]) & (sub["model"] == name)]
            for metric in HEADLINE_METRICS:
                value = scores[scores["metric"] == metric]
                cells[(name, labels[metric])] = (
                    f"{_number(value['amplitude'].iloc[0])} / {_number(value['phase'].iloc[0])}" if len(value) else ""
                )
            if status is not None and status["status"] != "ok":
                footnotes.append(
                    f"{name}, dose {dose_label(job['dose'])}, {job['view']}: {status['status']} ({status['reason']})"
                )
        out_rows.append(pd.Series(cells, name=(dose_label(job["dose"]), job["view"])))
    frame = pd.DataFrame(out_rows)
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["dose", "view"]) if len(frame) else frame.index
    footnotes = [
        *(f"{e.name} is {e.only_views_reason}: empty on the other views." for e in ENGINES if e.only_views_reason),
        *footnotes,
    ]
    return frame, footnotes


def _log_summary(frame: pd.DataFrame) -> None:
    logger.info("study summary: R2 and MS-SSIM, amplitude / phase, test split")
    for index, row in frame.iterrows():
        cells = ", ".join(f"{name} {metric} {value}" for (name, metric), value in row.items() if value)
        logger.info("  dose %s %-6s %s", index[0], index[1], cells)


def _display(frame: pd.DataFrame, digits: int) -> str:
    """HTML of a table with doses written 1e3 / 1e4 / 1e5 and empty cells where a value does not exist."""
    shown = frame.round(digits)
    if "dose" in shown:
        shown = shown.assign(dose=[dose_label(float(d)) if pd.notna(d) else "" for d in shown["dose"]])
    return shown.to_html(index=False, na_rep="")


def _img(png: bytes, kind: str) -> str:
    return f'<img class="{kind}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def dose_grid(pngs: list[bytes]) -> bytes:
    """One image grid per dose: its jobs' grids (each truth, models, floors; all on the study's shared colour
    scales) stacked top to bottom, padded white to the widest, as one PNG."""
    images = [mpimg.imread(io.BytesIO(png), format="png")[..., :3] for png in pngs]
    width = max(image.shape[1] for image in images)
    padded = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0) for im in images]
    buffer = io.BytesIO()
    mpimg.imsave(buffer, np.concatenate(padded, axis=0), format="png")
    return buffer.getvalue()


def _provenance_html(block: dict[str, Any]) -> str:
    dirty = {True: " (working tree dirty)", False: " (clean)", None: ""}[block["dirty"]]
    packages = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in block["packages"].items()
    )
    return (
        '<div id="provenance">'
        f"<p>git commit: <code>{html.escape(str(block['commit'] or 'unknown (no git)'))}</code>{dirty}<br>"
        f"run started: {html.escape(block['started'])}, report written: {html.escape(block['finished'])}<br>"
        f"seeds: {html.escape(json.dumps(block['seeds']))}</p>"
        f"<table><tr><th>package</th><th>version</th></tr>{packages}</table>"
        "<details><summary>resolved parameters</summary>"
        f"<pre>{html.escape(json.dumps(block['parameters'], indent=2, sort_keys=True, default=str))}</pre></details>"
        "</div>"
    )


def _jobs_html(jobs: list[dict[str, Any]]) -> str:
    rows = [
        {
            "model": job["model"],
            "view": record["view"],
            "split": record["split"],
            "status": job["status"],
            "positions": job["n_positions"],
            "device": job["device"] or "",
            "wall time (s)": "" if job["wall_time_s"] is None else f"{job['wall_time_s']:.1f}",
            "training (s)": "" if job["training_wall_time_s"] is None else f"{job['training_wall_time_s']:.1f}",
            "epochs run": "" if job["epochs_run"] is None else job["epochs_run"],
            "stop reason": job["stop_reason"] or job["reason"],
        }
        for record in jobs
        for job in record["jobs"]
    ]
    return pd.DataFrame(rows).to_html(index=False, na_rep="")


def render_report(
    table: pd.DataFrame,
    deltas: pd.DataFrame,
    overlap_manifest: pd.DataFrame,
    reconstruction_manifest: pd.DataFrame,
    parameters: dict[str, Any],
    metrics_figure: bytes,
    frc_figure: bytes,
    *per_job: Any,
) -> str:
    """One self-contained HTML page (PNG figures inlined): provenance, the headline table with its floors, the
    study figures, and per dose its jobs (time, device, positions, convergence) and image grids.

    ``per_job`` is every job's metrics record, then every job's image grid, then every job's convergence figure,
    in one order.
    """
    count = len(per_job) // 3
    records, grids, convergence = per_job[:count], per_job[count : 2 * count], per_job[2 * count :]
    headline, footnotes = headline_table(table, list(records))
    _log_summary(headline)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in footnotes)
    floors_note = (
        f"<p>Floors, scored with the same code: <b>{FLAT}</b> (mean amplitude, zero phase: R2 = 0 by construction) "
        f"and <b>{TRUTH_PATCHES}</b> (the view's ground-truth patches stitched as the PINN's are: the ceiling that "
        "stitching allows). All metrics are computed on the scanned region's lit pixels (probe intensity summed "
        "over the scan &ge; 10 % of its maximum); the phase is wrap-aligned to the truth.</p>"
    )
    sections = [
        ("Provenance", _provenance_html(provenance(parameters))),
        (
            "Headline: R2 and MS-SSIM (amplitude / phase), test split",
            floors_note + headline.to_html(na_rep="", classes="headline") + f"<ol class='footnotes'>{notes}</ol>",
        ),
        ("Metrics vs dose (floors dashed)", _img(metrics_figure, "study")),
        ("FRC curves (floors dashed)", _img(frc_figure, "study")),
    ]
    for dose in sorted({record["dose"] for record in records}):
        chosen = [i for i, record in enumerate(records) if record["dose"] == dose]
        grid = _img(dose_grid([grids[i] for i in chosen]), "grid")
        content = (
            _jobs_html([records[i] for i in chosen])
            + f"<h3>Image grid: every view and split (truth, models, floors)</h3>{grid}<h3>Convergence</h3>"
            + "".join(_img(convergence[i], "convergence") for i in chosen)
        )
        sections.append((f"Dose {dose_label(dose)}: jobs, image grid and convergence", content))
    sections += [
        ("PtychoPINN minus pty-chi LSQML", _display(deltas, 4)),
        ("Reconstruction jobs", _display(reconstruction_manifest, 3)),
        ("Overlap views", _display(overlap_manifest, 4)),
        ("All metrics (complex metrics such as NRMSE carry one value in both columns)", _display(table, 4)),
    ]
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>fly64 study report</title><style>{style}</style>"
        f"</head><body><h1>fly64 dose/overlap study</h1>{body}</body></html>"
    )
