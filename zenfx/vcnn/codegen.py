"""Python source of a converted VCNN graph as a standalone ``nn.Module`` class.

Module paths are flattened (``layer1.0.conv1`` -> ``layer1_0_conv1``) so the class needs no nested
containers; every leaf module is rebuilt from its ``repr`` (valid constructor syntax for torch.nn
layers), and ``state_dict()`` of :func:`flatten` of the graph loads into it.
"""

from __future__ import annotations

import copy
import re

import torch.fx as fx
from torch import nn


def _flat(name: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z_]", "_", name)
    return s if not s[:1].isdigit() else f"m_{s}"


def flatten(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``gm`` whose called modules and attributes all live at the top level, flat names."""
    gm = copy.deepcopy(gm)
    root = nn.Module()
    for n in gm.graph.nodes:
        if n.op in ("call_module", "get_attr"):
            flat = _flat(str(n.target))
            if not hasattr(root, flat):
                obj = gm.get_submodule(str(n.target)) if n.op == "call_module" else _attr(gm, str(n.target))
                if isinstance(obj, nn.Module):
                    root.add_module(flat, obj)
                elif isinstance(obj, nn.Parameter):
                    root.register_parameter(flat, obj)
                else:
                    root.register_buffer(flat, obj)
            n.target = flat
    out = fx.GraphModule(root, gm.graph, "VCNN")
    out.meta.update(gm.meta)
    return out


def _attr(gm: nn.Module, path: str):  # noqa: ANN202
    obj = gm
    for p in path.split("."):
        obj = getattr(obj, p)
    return obj


def module_source(gm: fx.GraphModule, class_name: str = "VCNN") -> str:
    """Standalone source of a class equivalent to ``flatten(gm)`` (load its state_dict to copy weights)."""
    flat = flatten(gm)
    imports = {"import torch", "from torch import nn"}
    init_lines = []
    for name, mod in flat.named_children():
        cls = type(mod)
        ctor = repr(mod)
        if "\n" in ctor:
            ctor = f"{cls.__name__}()  # FIXME: container; rebuild by hand"
        if cls.__module__.startswith("torch.nn"):
            ctor = "nn." + ctor
        else:
            imports.add(f"from {cls.__module__} import {cls.__name__}")
        init_lines.append(f"        self.{name} = {ctor}")
    for name, p in flat.named_parameters(recurse=False):
        init_lines.append(f"        self.{name} = nn.Parameter(torch.empty({tuple(p.shape)}))")
    for name, b in flat.named_buffers(recurse=False):
        init_lines.append(f"        self.register_buffer({name!r}, torch.empty({tuple(b.shape)}))")
    body = flat.code.strip("\n")
    body = "\n".join("    " + line if line.strip() else "" for line in body.splitlines())
    return ("\n".join(sorted(imports)) + "\n\n\n"
            f"class {class_name}(nn.Module):\n"
            "    def __init__(self) -> None:\n"
            "        super().__init__()\n" + "\n".join(init_lines) + "\n\n" + body + "\n")
