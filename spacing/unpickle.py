"""Reading pickles the harness did not write as data: plain Python values and numpy arrays, never code.

A pickle names functions and classes that unpickling calls; a file from a dir others can write (a
shared dataset copy, a cell dir) could name any. The readers here accept only the names a numpy array
needs (:data:`NUMPY_ARRAY`) and refuse any other before it is called. :mod:`spacing.checkpoint` gives
the same names to ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import codecs
import pickle
from typing import IO, Any

import numpy as np

_reconstruct = np.zeros(0).__reduce__()[0]
NUMPY_ARRAY: dict[str, Any] = {
    "numpy.core.multiarray._reconstruct": _reconstruct,  # the name numpy 1.x (and Python 2) wrote
    "numpy._core.multiarray._reconstruct": _reconstruct,  # numpy 2.x's
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    "_codecs.encode": codecs.encode,  # how Python 3 writes an array's bytes at protocol 2
}
"""The globals a pickled numpy array names, by the names pickles give them."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = NUMPY_ARRAY.get(f"{module}.{name}")
        if found is None:
            raise pickle.UnpicklingError(f"refused unread: it names {module}.{name}, which is not data")
        return found


def load_arrays(handle: IO[bytes], encoding: str = "ASCII") -> Any:
    """What `handle` holds, if it is plain values and numpy arrays; raises pickle.UnpicklingError, before
    calling it, on any other function or class it names. `encoding` as in :func:`pickle.load` (Python 2 pickles)."""
    return _ArraysOnly(handle, encoding=encoding).load()
