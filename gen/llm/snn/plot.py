"""The spiking rows of an evaluation report against the number of time steps: one PNG with two
panels, average accuracy (points) and LAMBADA perplexity (log scale), against ``T`` (log scale).

One line per network family (weight and activation bits, ``L``, nonlinear operators): solid for the
spikeops integer operators, dashed for the float operators, one colour per (W, A, L).  The settled
network is drawn at the right end ("settle"): a row at ``T=settle`` or, for every ``L`` of the same
bits and operators, the QANN row (they are equal, proven site by site); the float model is a
horizontal line.
"""

from __future__ import annotations

__all__ = ["snn_families", "accuracy_plot"]


def snn_families(report: dict) -> dict:
    """``{(W, A, L, ops): {T: row}}`` of the report's spiking rows (``T`` None: settled); the QANN
    rows fill the settled point of every family with their bits and operators."""
    from .config import Mode, SNNConfig

    fam, qann = {}, {}
    for row in report["rows"].values():
        if "snn" not in row:
            continue
        cfg = SNNConfig.from_json(row["snn"])
        if cfg.mode == Mode.QANN:
            qann[(cfg.W, cfg.A, str(cfg.ops))] = row
        else:
            fam.setdefault((cfg.W, cfg.A, cfg.L, str(cfg.ops)), {})[cfg.T] = row
    for (W, A, L, ops), rows in fam.items():
        if None not in rows and (W, A, ops) in qann:
            rows[None] = qann[(W, A, ops)]
    return fam


def accuracy_plot(report: dict, path) -> bool:
    """Write the plot to ``path``; False (nothing written) when the report has no spiking row with
    a finite ``T``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fam = snn_families(report)
    steps = sorted({t for rows in fam.values() for t in rows if t is not None})
    if not steps:
        return False
    settle_x = steps[-1] * 2
    xpos = lambda t: settle_x if t is None else t
    fig, (ax_acc, ax_ppl) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {}
    for (W, A, L, ops), rows in sorted(fam.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        c = colours.setdefault((W, A, L), f"C{len(colours) % 10}")
        ts = sorted(rows, key=xpos)
        style = dict(color=c, marker="o", linestyle="-" if ops == "spikeops" else "--",
                     label=f"W{W}A{A} L={L}, {ops} ops")
        ax_acc.plot([xpos(t) for t in ts], [rows[t]["avg"]["acc"] * 100 for t in ts], **style)
        lam = [(xpos(t), rows[t]["lambada"]["perplexity"]) for t in ts if "lambada" in rows[t]]
        if lam:
            ax_ppl.plot(*zip(*lam), **style)
    orig = report["rows"].get("original")
    if orig:
        ax_acc.axhline(orig["avg"]["acc"] * 100, color="black", linewidth=1, label="float model")
        if "lambada" in orig:
            ax_ppl.axhline(orig["lambada"]["perplexity"], color="black", linewidth=1, label="float model")
    ticks = steps + [settle_x]
    for ax in (ax_acc, ax_ppl):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in steps] + ["settle"])
        ax.minorticks_off()
        ax.set_xlabel("time steps T")
        ax.grid(True, alpha=0.3)
    ax_acc.set_ylabel("average accuracy (%)")
    ax_ppl.set_ylabel("LAMBADA perplexity")
    ax_ppl.set_yscale("log")
    tasks = ", ".join(report.get("tasks", []))
    lim = report.get("limit")
    ax_acc.set_title(f"{report.get('model', '')}: {tasks}" + (f" (first {lim} docs)" if lim else ""), fontsize=9)
    ax_ppl.set_title(f"LAMBADA ({report.get('ppl_limit') or 'all'} passages)", fontsize=9)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
