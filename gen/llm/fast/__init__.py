"""The golden operators on torch tensors, bit-identical to the numpy golden model and much faster.

``fast_golden(op, cfg, x, *args, mask=None)`` returns exactly ``numpy_golden(...)``, the definition
``dequantize(golden(quantize(x, cfg.in_format)), cfg.out_format)`` in ``x``'s dtype and device,
which is also the ``numpy`` back end of ``run_golden`` (:mod:`spikeops.gen.llm.operators`).  The
golden model stays the specification: every table is *computed by* golden (the operator record's
golden function, ``exp.pwl_exp``), the per-row decisions (division branch, theta, shifts, read-out)
call golden's ``shift``/``norm``/``division`` helpers on per-row numpy values, and only per-element
arithmetic is ported.  The modules:

* :mod:`.reference`: ``numpy_golden`` (the one numpy back end) and ``Fallback``, the hand-back to it;
* :mod:`.quantize`: ``quantize_codes`` and dequantisation on tensors (the float32 identity
  ``code(n) = (n + [n > 0]) >> 1``, ``n = trunc(clamp(x * 2**(frac+1)))``);
* :mod:`.kernel`: compiling ``kernels.c`` (package data) once per process and running its kernels
  on threads; ``kernel_available()``;
* :mod:`.division`: the Division Neuron Group row by row, ``q = min(floor((floor(A * 2**k) + beta)
  / T), q_max)``, with the float64 exactness argument;
* :mod:`.tables`: golden-computed lookup tables, cached per configuration;
* :mod:`.elementwise`, :mod:`.softmax`, :mod:`.norm`: the three operator paths;
* :mod:`.dispatch`: ``fast_golden``, choosing the path by the operator record.

Two realisations of the arithmetic, both tested bit for bit: the C kernels for float32 inputs (IEEE
float arithmetic, rows split over torch's thread count) and torch code (with golden's
``norm_root``) for everything else and for machines without a compiler
(``SPIKEOPS_FAST_NO_KERNEL=1`` forces it).  Configurations outside the proven-exact ranges (wider
codes, quotients beyond 53 bits, non-float tensors) and every invalid input (NaN, -inf where no
mask code is allowed, wrong shapes) go to ``numpy_golden``, so errors are golden's.

The speed benchmark on SmolLM2-135M shapes is ``spikeops bench --fast-backend``
(:func:`spikeops.gen.bench.fast_backend_speed`; ``python -m spikeops.gen.llm.fast`` runs it too).
"""

from .dispatch import fast_golden
from .kernel import kernel_available, threads
from .quantize import quantize_codes
from .reference import as_input, numpy_golden
from .tables import TABLE_MAX_WIDTH

__all__ = ["fast_golden", "numpy_golden", "quantize_codes", "kernel_available", "threads", "as_input",
           "TABLE_MAX_WIDTH"]
