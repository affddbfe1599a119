"""Compiling a model as a whole, one graph per entry point, with its parameter names unchanged.

A method calls a model through a few entry points (``forward``, ``forward_with_features``,
``stage_outputs``, self KD's ``exits``). Each is marked with :func:`entry_point`; once
:func:`compile_module` has marked a module, each entry point runs as one ``torch.compile``d graph
of the whole computation (fullgraph: a graph break is an error, never a silent fall-back to
eager), and an entry point called from inside another one's graph is traced into it.

The compiled function is the class's own function, taking the module as its first argument,
so every instance (a KD teacher and student, an EMA's deep copy) shares its graphs and runs on
its own weights; the module itself is not wrapped, so ``state_dict`` keys stay as they are.
The batch dimension is marked dynamic from the first call: the short last batch and the
evaluation batch size reuse the graphs instead of each compiling new ones against Dynamo's
recompile limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

Backend = str | Callable[..., Any]
"""A torch.compile backend: a registered name (``inductor``, ``aot_eager``, ``eager``) or a callable."""

Method = TypeVar("Method", bound=Callable[..., Any])

_BACKEND_ATTRIBUTE = "_compile_backend"


def compile_module(module: nn.Module, backend: Backend) -> None:
    """Run `module`'s entry points compiled by `backend` from now on (copies made later inherit it)."""
    setattr(module, _BACKEND_ATTRIBUTE, backend)


def compile_backend(module: nn.Module) -> Backend | None:
    """The backend :func:`compile_module` gave `module`; None if it runs eagerly."""
    return getattr(module, _BACKEND_ATTRIBUTE, None)


def entry_point(method: Method) -> Method:
    """Mark a model method as an entry point: compiled as one graph when its module is compiled."""
    compiled: dict[Backend, Callable[..., Any]] = {}

    @functools.wraps(method)
    def call(self: nn.Module, x: Tensor) -> Any:
        backend = compile_backend(self)
        if backend is None or torch.compiler.is_compiling():
            return method(self, x)
        if backend not in compiled:
            compiled[backend] = torch.compile(method, backend=backend, fullgraph=True)
        torch._dynamo.maybe_mark_dynamic(x, 0)
        return compiled[backend](self, x)

    return call  # type: ignore[return-value]
