"""The house's rules, read off the installed package: imports run one way and form no cycle.

The layers, bottom up: ``golden`` (the specification: numpy only) <- ``hdl`` (Amaranth) <- ``verif``
(cocotb) <- ``gen`` (flows, CLI, the LLM part).  A module may import its own layer and the layers
below, never above; golden imports no Amaranth, cocotb or torch, and only ``gen.llm`` imports torch
or transformers.  Every import counts, also those inside functions (they are the ones that hide
cycles and upward arrows).
"""

import ast
import importlib.util
from pathlib import Path

import pytest

LAYERS = ("golden", "hdl", "verif", "gen")
#: third-party packages each layer may not import (at any depth)
FORBIDDEN = {"golden": ("amaranth", "cocotb", "cocotb_tools", "torch", "transformers"),
             "hdl": ("cocotb", "cocotb_tools", "torch", "transformers"),
             "verif": ("torch", "transformers")}


def _modules() -> dict:
    """``{dotted module name: path}`` of every module of the installed ``spikeops`` package."""
    out = {}
    for layer in LAYERS:
        spec = importlib.util.find_spec(f"spikeops.{layer}")
        for root in spec.submodule_search_locations:
            for path in Path(root).rglob("*.py"):
                rel = path.relative_to(root).with_suffix("")
                parts = [p for p in rel.parts if p != "__init__"]
                out[".".join(["spikeops", layer, *parts])] = path
    return out


def _imports(name: str, path: Path) -> set:
    """Absolute names of everything ``path`` (module ``name``) imports."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    assert len(mods) > 40 and "spikeops.golden.registry" in mods
    edges = {}
    for name, path in mods.items():
        edges[name] = {m for m in _imports(name, path) if m in mods and m != name}
        edges[name] |= {m.rsplit(".", 1)[0] for m in _imports(name, path)
                        if m not in mods and m.rsplit(".", 1)[0] in mods and m.rsplit(".", 1)[0] != name}
    raw = {name: _imports(name, path) for name, path in mods.items()}
    return mods, edges, raw


def _layer(name: str) -> str:
    return name.split(".")[1]


def test_imports_run_down_the_layers(graph):
    _, edges, _ = graph
    against = sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs
                     if LAYERS.index(_layer(b)) > LAYERS.index(_layer(a)))
    assert against == []


def test_lower_layers_import_no_heavier_tools(graph):
    _, _, raw = graph
    bad = sorted(f"{name} imports {m}" for name, ms in raw.items() for m in ms
                 if m and m.split(".")[0] in FORBIDDEN.get(_layer(name), ()))
    assert bad == []
    torch_outside_llm = sorted(name for name, ms in raw.items() if any(m and m.split(".")[0] == "torch" for m in ms)
                               and not name.startswith("spikeops.gen.llm"))
    assert torch_outside_llm == []


def _cycles(edges: dict) -> list:
    """Strongly connected components of more than one module (Tarjan), as sorted lists."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(graph):
    _, edges, _ = graph
    # a package's __init__ re-exporting its own submodules is not a cycle of the design
    own = {a: {b for b in bs if not (b.startswith(a + ".") or a.startswith(b + "."))} for a, bs in edges.items()}
    assert _cycles(own) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
