"""spikeops golden model: the bit-exact, integer-only NumPy specification of the spiking operators.

Primitives: :mod:`.neurons` (integer LIF), :mod:`.division` (Division Neuron Group), :mod:`.exp`
(PWL-Exp), :mod:`.norm` (PolarNorm), :mod:`.shift` (leading-one detection, barrel shift).
Operators: :mod:`.ops`.  Float boundary: :mod:`.fixed`.  Exact float64 yardstick: :mod:`.reference`.
Nothing here imports Amaranth, cocotb or torch.
"""
