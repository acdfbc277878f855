"""The evaluation report: one self-contained HTML page per run date, plots embedded as PNG.

Sections: the metrics of every source and baseline for the date; NDCG over past nights; a 2-D map
(principal components) of the track embeddings coloured by cluster; the popularity long tail and
how much of it the date's recommendations reach. `render` takes the DataFrames the evaluate stage
reads and returns the page; the stage writes it (jobs.core.paths, models.storage).
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io

import matplotlib
import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

MAP_POINTS = 5000


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _metrics_table(results: dict) -> str:
    names = [m for m in next(iter(results.values())) if m != "users"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["source", *names])
    rows = "".join("<tr><td>" + html.escape(src) + "</td>" + "".join(f"<td>{vals[n]:.4f}</td>" for n in names) + "</tr>"
                   for src, vals in results.items())
    return f"<table><tr>{head}</tr>{rows}</table>"


def _history_plot(metrics: DataFrame, k: int) -> str:
    rows = (metrics.where((F.col("metric") == "ndcg") & (F.col("k") == k))
            .select("run_date", "model", "value").orderBy("run_date").collect())
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for model in sorted({r["model"] for r in rows}):
        points = [(r["run_date"], r["value"]) for r in rows if r["model"] == model]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=model)
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("NDCG over past nights")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _png(fig)


def _embedding_map(embeddings: DataFrame | None, emb_date: dt.date | None) -> str:
    """embeddings: (track_idx, vector, cluster) of emb_date, or None when there are none yet."""
    if embeddings is None:
        return "<p>No track embeddings on or before this date yet (run embed).</p>"
    sample = embeddings.orderBy(F.xxhash64("track_idx")).limit(MAP_POINTS).select("vector", "cluster").toPandas()
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(sample) >= 3:
        matrix = np.stack(sample["vector"].to_numpy())
        centred = matrix - matrix.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        colours = sample["cluster"].fillna(-1).to_numpy()
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap="tab20", s=6)
    ax.set_title(f"track embeddings of {emb_date} (first two principal components), colour = cluster")
    return _png(fig)


def _long_tail(plays: DataFrame, recommended: DataFrame | None) -> tuple[str, str]:
    counts = plays.groupBy("track_id").count().toPandas().sort_values("count", ascending=False)
    reached = set() if recommended is None else {r[0] for r in recommended.select("track_id").distinct().collect()}
    head_size = max(1, int(0.2 * len(counts)))
    tail = counts.iloc[head_size:]
    tail_reached = sum(t in reached for t in tail["track_id"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.arange(1, len(counts) + 1), counts["count"].to_numpy(), color="grey", label="plays per track")
    hits = [i + 1 for i, t in enumerate(counts["track_id"]) if t in reached]
    ax.scatter(hits, counts["count"].to_numpy()[np.array(hits, dtype=int) - 1] if hits else [], s=6, color="crimson",
               label="recommended")
    ax.axvline(head_size, linestyle="--", color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("tracks by popularity rank")
    ax.legend(fontsize=7)
    text = (f"{len(reached)} distinct tracks recommended of {len(counts)} played; the long tail (all but the "
            f"20% most played, {len(tail)} tracks) is reached by {tail_reached} "
            f"({tail_reached / max(len(tail), 1):.1%}).")
    return _png(fig), text


def _quality(quality: tuple[dict, list[str]]) -> str:
    measures, alerts = quality
    if not measures:
        return "<p>No clean summary for this date.</p>"
    rows = "".join(f"<tr><td>{html.escape(str(name))}</td><td>{value if not isinstance(value, float) else f'{value:.3f}'}"
                   f"</td></tr>" for name, value in measures.items())
    flagged = "".join(f'<li style="color:crimson">{html.escape(a)}</li>' for a in alerts)
    return f"<table>{rows}</table>" + (f"<ul>{flagged}</ul>" if alerts else "<p>No data-quality alert.</p>")


def render(day: dt.date, night: dt.date, results: dict, k: int, note: str, quality: tuple[dict, list[str]],
           metrics: DataFrame, plays: DataFrame, recommended: DataFrame | None, embeddings: DataFrame | None,
           emb_date: dt.date | None) -> str:
    """The report page of `day`: results ({configuration or source: {metric: value}}) of the lists of
    `night`, the served lists against the users' most played (note; a regression is shown in red),
    gold.metrics over past nights, the plays up to day, the day's recommendations and the latest
    embeddings with their clusters."""
    tail_plot, tail_text = _long_tail(plays, recommended)
    colour = "crimson" if "REGRESSION" in note else "darkgreen"
    served_html = (f"<h2>Yesterday's recommendations against today's plays</h2>"
                   f'<p style="color:{colour}"><b>{html.escape(note)}</b></p>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>setlist evaluation {day}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>setlist evaluation, {day}</h1>
<h2>The lists of {night}: served, every configuration and every source (K = {k})</h2>{_metrics_table(results)}
{served_html}
<h2>Data quality of {day}</h2>{_quality(quality)}
<h2>Over past nights</h2>{_history_plot(metrics, k)}
<h2>Track embeddings</h2>{_embedding_map(embeddings, emb_date)}
<h2>Popularity long tail</h2><p>{html.escape(tail_text)}</p>{tail_plot}
</body></html>"""
