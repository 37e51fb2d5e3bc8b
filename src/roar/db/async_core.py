"""SQLAlchemy's asyncio engine and connection, without the ORM its package also imports.

``import sqlalchemy.ext.asyncio`` runs the package's ``__init__``, which imports AsyncSession
and with it the whole ORM, which ROAR does not use: about 40 ms of every start and 7 MB of
every process (docs/benchmarks.md, cold start and memory). Every ROAR module takes these names
from here instead. The package is registered without running its ``__init__``; its engine and
result modules load as usual. The first time anything asks the package for a name only the
``__init__`` provides (``from sqlalchemy.ext.asyncio import AsyncSession``), the ``__init__``
runs, once, and the package is what it always is.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import sys
from typing import Any

_PACKAGE = "sqlalchemy.ext.asyncio"


def _register_without_init() -> None:
    if _PACKAGE in sys.modules:  # imported already (by a test, a tool): nothing to save
        return
    import sqlalchemy.ext

    spec = importlib.util.find_spec(_PACKAGE)
    assert spec is not None and spec.loader is not None and spec.submodule_search_locations
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    submodules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}

    def __getattr__(name: str) -> Any:  # PEP 562: called only for names not set yet
        if name.startswith("__") or name in submodules:
            # The import system asks before it imports a submodule (`from . import exc`).
            raise AttributeError(name)
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[_PACKAGE] = package
    sqlalchemy.ext.asyncio = package  # as the import system does


_register_without_init()

from sqlalchemy.ext.asyncio.engine import (  # noqa: E402
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)
from sqlalchemy.util import concurrency  # noqa: E402

# The one other thing the package's __init__ does: load greenlet now, not at the first query.
concurrency._concurrency_shim._initialize()

__all__ = ["AsyncConnection", "AsyncEngine", "create_async_engine"]
