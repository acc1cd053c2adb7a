"""Pareto plots of a sweep (matplotlib, Agg backend): one PNG per operator, two panels:
error (log scale, real units) against ECP5 LUT-equivalent, and Fmax against ECP5 LUT-equivalent;
when the points' latencies differ (a ``target_mhz`` sweep, an architecture choice), latency against
ECP5 LUT-equivalent and Fmax against latency (cycles); when their throughputs differ (measured
elements per cycle times Fmax), Melem/s against ECP5 LUT-equivalent.
Every point is a dot labelled with its number, the Pareto front is a line through highlighted
points, the default (base) configuration is a star."""

from __future__ import annotations

from pathlib import Path

from .pareto import front_rows, latency_column

__all__ = ["plot_op", "save_figure"]

LUT = "ecp5_lut_equivalent"


LATENCY = "latency_cycles"


def _panel(ax, rows, y: str, *, maximise: bool, ylabel: str, log: bool, x: str = LUT,
           xlabel: str = "ECP5 LUT-equivalent (LUT4 + 2 CCU2C)"):
    pts = [r for r in rows if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    if not pts:
        ax.text(0.5, 0.5, f"no points with {y} and {x}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    ax.scatter([r[x] for r in pts], [r[y] for r in pts], s=22, color="0.55", zorder=2, label="points")
    front = front_rows(pts, x, y, maximise_y=maximise)
    ax.plot([r[x] for r in front], [r[y] for r in front], "-o", color="tab:red", ms=6, zorder=3,
            label="Pareto front", drawstyle="steps-post")
    for r in pts:
        ax.annotate(r["point"].rsplit("-", 1)[-1], (r[x], r[y]), textcoords="offset points", xytext=(3, 3),
                    fontsize=7, color="0.25")
    for r in pts:
        if r["default"]:
            ax.scatter([r[x]], [r[y]], marker="*", s=200, color="tab:blue", zorder=4, label="default")
    if log and all(r[y] > 0 for r in pts):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def plot_op(op: str, rows, path, *, error_column: str = "err_max_real") -> Path:
    """Write the figure of ``op``'s rows to ``path``; return the path."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    def differ(column):
        return len({r.get(column) for r in rows if r.get(column) not in (None, "")}) > 1

    panels = [dict(y=error_column, maximise=False, log=True, ylabel=f"{error_column.replace('_', ' ')} (real units)",
                   title="error against area"),
              dict(y="fmax_mhz", maximise=True, log=False, ylabel="Fmax (MHz), nextpnr-ecp5", title="Fmax against area")]
    latency = latency_column(rows)
    latency_label = ("latency at the longest row (cycles after its last input)" if latency != LATENCY
                     else "latency (cycles; rows: beyond the row's length)")
    if differ(latency):
        panels.append(dict(y=latency, maximise=False, log=False, ylabel=latency_label, title="latency against area"))
        if any(r.get("fmax_mhz") not in (None, "") for r in rows):
            panels.append(dict(y="fmax_mhz", maximise=True, log=False, x=latency, ylabel="Fmax (MHz), nextpnr-ecp5",
                               xlabel=latency_label, title="Fmax against latency"))
    if differ("throughput_meps"):
        panels.append(dict(y="throughput_meps", maximise=True, log=False,
                           ylabel="Melem/s (Fmax x elements per cycle)", title="throughput against area"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.6))
    for ax, panel in zip(axes, panels):
        title = panel.pop("title")
        _panel(ax, rows, **panel)
        ax.set_title(f"{op}: {title}")
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """Lay out ``fig``, write it to ``path`` (PNG, 110 dpi) and close it."""
    from matplotlib import pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
