"""convx's thread pool as a library that threadpoolctl lists and limits.

threadpoolctl (an optional dependency, 3.0 or later) looks for thread pools among the
shared objects loaded in the process. ``register()``, called when convx is imported,
adds a controller for convx's compiled module, so that ``threadpool_info()`` lists it
(user_api and internal_api "convx") and ``threadpool_limits(n)`` (for all libraries, or
with ``user_api="convx"``) also sets ``convx.set_num_threads(n)`` for its duration.

threadpoolctl matches a library by the start of its file name and by the symbols it
exports. The compiled module's file name starts with "_core", as other packages'
modules do, so the controller also requires the symbol ``convx_get_num_threads``, which
only convx's module exports (csrc/bindings/module.cpp).
"""

from __future__ import annotations

from typing import Any

import convx

__all__ = ["USER_API", "register"]

USER_API = "convx"
_FILENAME_PREFIX = "_core"
_MARKER_SYMBOL = "convx_get_num_threads"
# The range convx.set_num_threads accepts; a limit outside it is clamped into it.
_MIN_THREADS, _MAX_THREADS = 1, 1024

_registered = False


def register() -> bool:
    """Register convx's controller with threadpoolctl once, if threadpoolctl is installed
    and has the controller API; return whether convx is registered. An optional
    integration never stops convx from importing, so this never raises."""
    global _registered
    if _registered:
        return True
    try:
        import threadpoolctl
    except Exception:  # absent, or failing to import: convx works without it
        return False
    _registered = register_with(threadpoolctl)
    return _registered


def register_with(module: Any) -> bool:
    """Register convx's controller with `module` (threadpoolctl), or return False when
    it lacks ``LibController`` and ``register`` (threadpoolctl before 3.0)."""
    base = getattr(module, "LibController", None)
    add = getattr(module, "register", None)
    if not isinstance(base, type) or not callable(add):
        return False
    try:
        add(_controller_class(base))
    except Exception:  # a threadpoolctl whose registration API differs from 3.x
        return False
    return True


def _controller_class(base: type) -> type:
    """A threadpoolctl.LibController subclass for convx's pool."""

    class ConvxController(base):  # type: ignore[misc]
        user_api = USER_API
        internal_api = USER_API
        filename_prefixes = (_FILENAME_PREFIX,)
        check_symbols = (_MARKER_SYMBOL,)

        def get_num_threads(self) -> int:
            return convx.get_num_threads()

        def set_num_threads(self, num_threads: int) -> None:
            convx.set_num_threads(max(_MIN_THREADS, min(int(num_threads), _MAX_THREADS)))

        def get_version(self) -> str:
            return convx.__version__

    return ConvxController
