"""An lm-eval-harness model for the converted decoders: any lm-eval task on the spiking operators.

Registered as ``spikeops`` in lm-eval's model registry when this module is imported.  lm-eval
0.4.13 discovers no models from other packages, so its command line is run through this module,
which registers the adapter first and then hands every argument to lm-eval unchanged::

    python -m spikeops.gen.llm.lm_eval_adapter --model spikeops \\
        --model_args model=smollm2,kinds=softmax+activation+norm,layers=all,plan=out/plan.json \\
        --tasks hellaswag

and from Python::

    import lm_eval
    import spikeops.gen.llm.lm_eval_adapter  # registers "spikeops"
    lm_eval.simple_evaluate(model="spikeops", model_args="model=smollm2,layers=0-3+7", tasks=["piqa"])

``model_args`` (see :class:`SpikeOpsLM`): ``model`` (``smollm2`` or a local Llama-family folder /
``.gguf``), ``kinds`` (``+``-joined subset of softmax, activation, norm; ``all``; or ``float`` for
the unconverted baseline through the same code), ``layers`` (``0-3+7``, or ``'0-3,7'`` quoted;
``all``), ``plan`` (a conversion plan to apply; when the file does not exist yet the model is
calibrated and the plan is written there), ``calibration_texts``, ``backend`` (fast | numpy),
``batch_tokens``, ``max_length``, ``max_gen_toks``, ``snn`` (the quantised or spiking network of
:mod:`spikeops.gen.llm.snn`, its spec with ``;`` between keys: ``snn=T=4;L=16;W=8;A=8``).

Scoring follows :mod:`spikeops.gen.llm.scoring` (lm-eval's tokenisation: trailing context spaces move to the
continuation, no special tokens, an empty context is the end-of-text token; requests sorted by
length and packed to ``batch_tokens`` padded tokens), so ``loglikelihood`` gives the numbers of
:func:`spikeops.gen.llm.scoring.loglikelihoods` plus lm-eval's ``is_greedy``.  ``loglikelihood_rolling``
uses lm-eval's disjoint rolling windows of ``max_length`` tokens.  ``generate_until`` decodes one
request at a time (no padding) with ``model.generate`` and its KV cache through the registered
spiking attention, stopping at the ``until`` strings.  Everything runs on the CPU, where the
golden operators run; lm-eval's ``device`` and ``batch_size`` are accepted and not used.
"""

from __future__ import annotations

if __name__ == "__main__":
    # `python -m spikeops.gen.llm.lm_eval_adapter ...`: import this module under its real name (which
    # registers the model) and run lm-eval's command line.  Defining the class here in
    # ``__main__`` as well would register a second class under the same name, which lm-eval refuses.
    import sys

    from spikeops.gen.llm.lm_eval_adapter import main

    sys.exit(main())

import logging
import os
from pathlib import Path

# The model is always read from local files (spikeops.gen.llm.models passes local_files_only=True), and
# nothing here touches HF_HUB_OFFLINE: a user with network still gets lm-eval's task data sets.
from lm_eval import utils as lm_utils  # noqa: E402
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402
from tqdm import tqdm  # noqa: E402

from .plan import longest_row  # noqa: E402
from .scoring import encode_pair, score_tokens  # noqa: E402
from .sites import KINDS  # noqa: E402

__all__ = ["SpikeOpsLM", "parse_kinds", "parse_layer_arg", "parse_arg_string",
           "rolling_requests", "main", "MODEL_ARGS"]

eval_logger = logging.getLogger("lm_eval.models.spikeops")

#: the model_args the adapter takes (lm-eval also passes batch_size, max_batch_size, device)
MODEL_ARGS = ("model", "kinds", "layers", "plan", "calibration_texts", "backend", "batch_tokens",
              "max_length", "max_gen_toks", "quiet", "snn")
_FROM_LM_EVAL = ("batch_size", "max_batch_size", "device")
FLOAT = "float"


def _bad(name, value, why, allowed) -> ValueError:
    return ValueError(f"spikeops: model_args {name}={value!r} {why}; allowed: {allowed}")


def parse_kinds(value) -> tuple:
    """``None`` / ``"all"`` -> every kind; ``"float"`` or ``""`` -> none (the float model);
    ``"softmax+norm"`` (``+`` or ``,`` between kinds) or a list -> those kinds, in KINDS order."""
    allowed = f"kinds from {', '.join(KINDS)} joined with '+', 'all', or '{FLOAT}' (nothing replaced)"
    if value is None or value == "all":
        return KINDS
    if isinstance(value, str):
        if value.strip() in ("", FLOAT):
            return ()
        items = [p.strip() for p in value.replace(",", "+").split("+")]
    elif isinstance(value, (list, tuple)):
        items = [str(p).strip() for p in value]
    else:
        raise _bad("kinds", value, "is not a string or a list", allowed)
    bad = [p for p in items if p not in KINDS]
    if bad or not items:
        raise _bad("kinds", value, f"names {bad} that are unknown" if bad else "is empty", allowed)
    return tuple(k for k in KINDS if k in items)


def parse_layer_arg(value):
    """``None`` / ``"all"`` -> None (every layer); ``"0-3+7"`` or ``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``;
    an int or a list of ints -> that list (by :func:`spikeops.gen.llm.command.parse_layers`)."""
    from .command import parse_layers

    allowed = "indices and ranges like 0-3+7 (or '0-3,7' in quotes), or 'all'"
    if value is None or value == "all":
        return None
    if isinstance(value, bool):
        raise _bad("layers", value, "is not a layer list", allowed)
    if isinstance(value, int):
        value = [value]
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise _bad("layers", value, "is not a list of layer indices", allowed)
        return sorted(set(value))
    if not isinstance(value, str):
        raise _bad("layers", value, "is not a layer list", allowed)
    try:
        return sorted(set(parse_layers(value.replace("+", ","))))
    except ValueError:
        raise _bad("layers", value, "does not parse", allowed) from None


def parse_arg_string(arg_string: str | None) -> dict:
    """lm-eval's ``key=value,key=value`` with one difference: a comma-separated piece without ``=``
    continues the previous value, so ``layers=0-3,7`` keeps its comma (lm-eval's own parser would
    make ``7`` an argument).  Values are typed by ``lm_eval.utils.handle_arg_string``."""
    out: dict = {}
    last = None
    for piece in (arg_string or "").split(","):
        if not piece.strip():
            continue
        if "=" in piece:
            last, value = piece.split("=", 1)
            last = last.strip()
            out[last] = value
        elif last is None:
            raise ValueError(f"spikeops: model_args {arg_string!r}: {piece!r} is not key=value")
        else:
            out[last] += "," + piece
    return {k: lm_utils.handle_arg_string(v) for k, v in out.items()}


def _int_arg(name, value, low, default=None):
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(name, value, "is not an integer", f"an integer >= {low}")
    return value


def rolling_requests(token_ids, prefix_token: int, max_length: int) -> list[tuple[list, int]]:
    """lm-eval's rolling windows of a token list as ``(ids, n)`` requests: each token is predicted
    once, with up to ``max_length`` tokens of context (``get_rolling_token_windows`` with
    ``context_len=1``, made disjoint by ``make_disjoint_window``)."""
    windows = lm_utils.get_rolling_token_windows(token_list=list(token_ids), prefix_token=prefix_token,
                                                 max_seq_len=max_length, context_len=1)
    out = []
    for ctx, pred in map(lm_utils.make_disjoint_window, windows):
        out.append((list(ctx) + list(pred), len(pred)))
    return out


@register_model("spikeops")
class SpikeOpsLM(LM):
    """A converted Llama-family model (spiking Softmax / SiLU / RMSNorm from the golden model)
    behind lm-eval's ``LM`` interface.

    Args (lm-eval ``model_args``):
        model: ``smollm2`` (embedded) or a local Llama-family model folder or ``.gguf`` file.
        kinds: operator kinds to replace, ``+``-joined (``softmax+activation+norm``, the default
            ``all``), or ``float`` to evaluate the unconverted model through the same code.
        layers: decoder layers to convert (``0-3+7``, ``'0-3,7'``, ``[0, 1]``), default ``all``
            (the final norm is converted only with every layer).
        plan: a conversion-plan JSON.  Applied as it is when the file exists (no calibration;
            ``kinds``/``layers``, when given, must match it); otherwise the model is calibrated,
            planned and the plan is written to this path.
        calibration_texts: BoolQ passages to calibrate on (default 32).
        backend: ``fast`` (default) or ``numpy``: how the golden integers are computed.
        batch_tokens: padded tokens per scoring batch (default 4096).
        max_length: longest model input in tokens (default: 2048, the softmax's ``d_max`` and the
            model's ``max_position_embeddings``, whichever is least: rolling windows of 2048 keep the
            perplexity tasks' cost down; up to the least of the other two on request).
        max_gen_toks: default generation length when a request gives none (default 256).
        quiet: no progress bars or loading messages (default False).
        snn: a quantised or spiking network (:class:`spikeops.gen.llm.snn.SNNConfig` spec, keys joined
            by ``;`` since ``,`` separates model_args: ``T=4;L=16;W=8;A=8``, ``mode=qann``), built on
            the plan (every kind, every layer); scores likelihoods (``generate_until`` is refused).
            A plan written by ``spikeops convert --snn`` brings its network without this argument.
        batch_size, max_batch_size, device: passed by lm-eval; not used (batches are by tokens and
            the golden operators run on the CPU).
    """

    def __init__(self, model: str = "smollm2", kinds=None, layers=None, plan=None, calibration_texts=None,
                 backend: str = "fast", batch_tokens=4096, max_length=None, max_gen_toks=256,
                 batch_size=None, max_batch_size=None, device=None, quiet: bool = False, snn=None, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f"spikeops: model_args {sorted(unknown)} are unknown; allowed: "
                             f"{', '.join(MODEL_ARGS)}")
        from .operators import BACKENDS, set_backend

        if not isinstance(model, str) or not model:
            raise _bad("model", model, "is not a name or a path", "smollm2 or a local model folder / .gguf")
        self.kinds = parse_kinds(kinds)
        self.layers = parse_layer_arg(layers)
        if backend not in BACKENDS:
            raise _bad("backend", backend, "is unknown", " | ".join(BACKENDS))
        self.batch_tokens = _int_arg("batch_tokens", batch_tokens, 1)
        self.max_gen_toks = _int_arg("max_gen_toks", max_gen_toks, 1)
        n_cal = _int_arg("calibration_texts", calibration_texts, 1, default=32)
        if max_length is not None:
            max_length = _int_arg("max_length", max_length, 2)
        if plan is not None and not isinstance(plan, (str, os.PathLike)):
            raise _bad("plan", plan, "is not a path", "a conversion-plan JSON file")
        self.snn = None
        if snn is not None:
            from .snn import SNNConfig
            try:
                self.snn = SNNConfig.parse(str(snn))
            except ValueError as err:
                raise _bad("snn", snn, f"is not a network ({err})", "keys joined by ';', e.g. T=4;L=16;W=8;A=8") from None
            if kinds is not None or layers is not None:
                raise _bad("kinds" if kinds is not None else "layers", kinds if kinds is not None else layers,
                           "is given with snn", "snn alone (the network converts every kind in every layer)")
        if device is not None and not str(device).startswith("cpu"):
            eval_logger.info("spikeops: device=%s is not used; the golden operators run on the CPU", device)
        if batch_size not in (None, 1, "1"):
            eval_logger.info("spikeops: batch_size=%s is not used; requests are batched by "
                             "batch_tokens=%d padded tokens", batch_size, self.batch_tokens)
        set_backend(backend)
        self.backend = backend
        self.quiet = quiet
        self._device = "cpu"
        self.plan_path = None if plan is None else str(plan)
        self.loaded, self.plan, self.plan_source = self._build(model, kinds, layers, n_cal)
        self.max_length = self._resolve_max_length(max_length)
        eval_logger.info("spikeops: %s (%s), %d instances replaced (%s), max_length %d, backend %s",
                         self.loaded.name, self.plan_source, len(self.plan.instances),
                         "+".join(self.plan.kinds) or FLOAT, self.max_length, self.backend)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """As lm-eval's, with commas allowed inside a value (``layers=0-3,7``)."""
        args = parse_arg_string(arg_string)
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**args, **extra)

    # -- building --------------------------------------------------------------------------

    def _build(self, model, kinds_arg, layers_arg, n_cal):
        from .models import load
        from .plan import Plan, apply_plan, make_plan

        path = Path(self.plan_path) if self.plan_path else None
        plan = Plan.load(path) if path is not None and path.exists() else None
        if plan is not None and plan.snn is not None:  # a plan written by `spikeops convert --snn`
            if self.snn is not None and self.snn != plan.snn:
                raise _bad("snn", self.snn.spec(), f"differs from the plan's network {plan.snn.spec()!r}",
                           "the plan's network, or leave snn out")
            self.snn = plan.snn
        if self.snn is not None:
            return self._build_snn(model, path, plan, n_cal)
        if plan is not None:
            if kinds_arg is not None and tuple(plan.kinds) != self.kinds:
                raise _bad("kinds", kinds_arg, f"differs from the plan's {'+'.join(plan.kinds) or FLOAT}",
                           "the plan's kinds, or leave kinds out")
            if layers_arg is not None and plan.layers != self.layers:
                raise _bad("layers", layers_arg, f"differs from the plan's {plan.layers or 'all'}",
                           "the plan's layers, or leave layers out")
            lm = load(model, quiet=self.quiet)
            self._check_family(model, lm)
            if plan.model not in (model, lm.name) or plan.family != lm.family:
                raise _bad("plan", str(path), f"was made for model {plan.model!r} ({plan.family}), "
                           f"not {model!r} ({lm.family})", f"a plan made for {model!r}")
            apply_plan(lm.model, plan)
            return lm, plan, f"plan {path.name}"
        if not self.kinds:  # the float model: nothing to calibrate
            lm = load(model, quiet=self.quiet)
            self._check_family(model, lm)
            plan = make_plan(lm.model, lm.family, name=model, kinds=(), layers=self.layers)
            source = "float"
        else:
            from .session import Session

            session = Session(model, calibration_texts=n_cal, quiet=self.quiet)
            self._check_family(model, session.lm)
            try:
                plan = session.plan(kinds=self.kinds, layers=self.layers)
            except ValueError as err:
                raise ValueError(f"spikeops: model_args layers={self.layers}: {err}") from None
            lm = session.converted(plan)
            del session  # the float copy is no longer needed
            source = f"calibrated on {n_cal} texts"
        if path is not None:
            plan.save(path)
            eval_logger.info("spikeops: plan written to %s", path)
            source += f", plan written to {path.name}"
        return lm, plan, source

    def _build_snn(self, model, path, plan, n_cal):
        """The spiking network of ``snn`` on ``plan`` (read from ``path``) or, without one, a fresh
        plan (written to ``path`` when given)."""
        from .session import Session

        session = Session(model, calibration_texts=n_cal, quiet=self.quiet)
        self._check_family(model, session.lm)
        if plan is not None:
            source = f"plan {path.name}"
            if plan.model not in (model, session.lm.name) or plan.family != session.lm.family:
                raise _bad("plan", str(path), f"was made for model {plan.model!r} ({plan.family}), "
                           f"not {model!r} ({session.lm.family})", f"a plan made for {model!r}")
        else:
            plan, source = session.plan(), f"calibrated on {n_cal} texts"
            if path is not None:
                plan.save(path)
                source += f", plan written to {path.name}"
        return session.spiking(self.snn, plan), plan, f"{self.snn.describe()}, {source}"

    @staticmethod
    def _check_family(model, lm):
        if lm.family != "llama":
            raise _bad("model", model, f"is a {lm.family}-family encoder", "a causal (Llama-family) model")

    def _resolve_max_length(self, requested):
        cfg = self.loaded.model.config
        limit = int(getattr(cfg, "max_position_embeddings", 2048) or 2048)
        why = f"the model's max_position_embeddings={limit}"
        # a masked-row operator (the softmax) takes rows of up to its row length (d_max) positions
        rows = longest_row(self.plan)
        if rows is not None and rows[0] < limit:
            limit, why = rows[0], f"the spiking softmax's {rows[2]}={rows[0]}"
        if requested is None:
            return min(2048, limit)
        if requested > limit:
            raise _bad("max_length", requested, f"exceeds {why}", f"2 .. {limit}")
        return requested

    # -- lm-eval interface -----------------------------------------------------------------

    @property
    def model(self):
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        """The token an empty context becomes: end-of-text, as :func:`spikeops.gen.llm.scoring.encode_pair`."""
        return self.tokenizer.eos_token_id

    @property
    def tokenizer_name(self) -> str:
        return self.loaded.name.replace("/", "__")

    def _progress(self, disable_tqdm) -> bool:
        return not (disable_tqdm or self.quiet or self.rank != 0)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``(log P(continuation | context), is_greedy)`` per ``(context, continuation)`` request."""
        args = [req.args for req in requests]
        enc = [encode_pair(self.tokenizer, c, x, max_len=self.max_length) for c, x in args]
        res = score_tokens(self.loaded, enc, batch_tokens=self.batch_tokens,
                           desc="Running loglikelihood requests", progress=self._progress(disable_tqdm))
        for a, r in zip(args, res):
            self.cache_hook.add_partial("loglikelihood", a, r)
        return res

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of each whole text after an end-of-text token, in lm-eval's disjoint
        rolling windows of ``max_length`` tokens (one window when the text fits)."""
        texts = [req.args[0] for req in requests]
        windows, owner = [], []
        for k, text in enumerate(texts):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            for w in rolling_requests(ids, self.prefix_token_id, self.max_length):
                windows.append(w)
                owner.append(k)
        res = score_tokens(self.loaded, windows, batch_tokens=self.batch_tokens,
                           desc="Running loglikelihood_rolling requests", progress=self._progress(disable_tqdm))
        out = [0.0] * len(texts)
        for k, (ll, _) in zip(owner, res):
            out[k] += ll
        for text, v in zip(texts, out):
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), v)
        return out

    def generate_ids(self, context_ids, max_new_tokens: int, until=(), **kwargs) -> list[int]:
        """Greedy (or, with ``do_sample=True``, sampled) continuation ids of ``context_ids`` by
        ``model.generate`` with its KV cache, stopping at end-of-text or once a string of
        ``until`` appears in the decoded continuation (the tokens up to that point are returned)."""
        import torch
        from lm_eval.models.utils_hf import stop_sequences_criteria

        ids = list(context_ids) or [self.prefix_token_id]
        inp = torch.tensor([ids], dtype=torch.long)
        stops = [s for s in until if s]
        criteria = stop_sequences_criteria(self.tokenizer, stops, inp.shape[1], 1) if stops else None
        if not kwargs.get("do_sample"):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("temperature", "top_p", "top_k")}
            kwargs["do_sample"] = False
        with torch.no_grad():
            out = self.model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                                      max_new_tokens=max_new_tokens, stopping_criteria=criteria,
                                      pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **kwargs)
        return out[0, inp.shape[1]:].tolist()

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Per ``(context, gen_kwargs)`` request: the continuation up to the first ``until`` string
        (end-of-text always stops), at most the request's ``max_gen_toks`` tokens (else the
        adapter's); the context keeps its last ``max_length - max_gen_toks`` tokens."""
        from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

        if self.snn is not None and requests:
            raise ValueError(f"spikeops: generate_until is not available for snn={self.snn.spec()!r} (the "
                             "network has no key-value cache to decode with); allowed: loglikelihood and "
                             "loglikelihood_rolling tasks, or leave snn out")

        eos = self.tokenizer.decode([self.eot_token_id], skip_special_tokens=False)
        out = []
        bar = tqdm(total=len(requests), desc="Running generate_until requests",
                   disable=not self._progress(disable_tqdm))
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = dict(normalize_gen_kwargs(dict(gen_kwargs or {}), self.max_gen_toks))
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen = kwargs.pop("max_gen_toks")
            kwargs.pop("max_length", None)
            room = self.max_length - max_gen
            if room < 1:
                raise ValueError(f"spikeops: a request asks for max_gen_toks={max_gen}, which leaves no room "
                                 f"for its context in max_length={self.max_length}")
            ids = self.tokenizer(context, add_special_tokens=False)["input_ids"][-room:]
            new = self.generate_ids(ids, max_gen, until, **kwargs)
            text = postprocess_generated_text(self.tokenizer.decode(new, skip_special_tokens=True), until, None)
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            bar.update(1)
        bar.close()
        return out

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    def get_model_info(self) -> dict:
        """What lm-eval records in its results' ``config``: the conversion, for reproducibility."""
        return {"spikeops_model": self.loaded.name, "spikeops_family": self.loaded.family,
                "spikeops_kinds": list(self.plan.kinds), "spikeops_layers": self.plan.layers,
                "spikeops_instances": len(self.plan.instances), "spikeops_plan": self.plan_source,
                "spikeops_calibration": self.plan.calibration, "spikeops_backend": self.backend,
                "spikeops_max_length": self.max_length, "spikeops_snn": self.snn and self.snn.spec(),
                "model_num_parameters": sum(p.numel() for p in self.model.parameters())}


def main(argv=None) -> int:
    """lm-eval's command line with the ``spikeops`` model registered (``argv``: its arguments)."""
    import sys

    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()
    return 0
