"""nsbridge: Docker's single-host networking on the real Linux kernel, without Docker.

`from nsbridge import Engine` gives the engine the CLI, the tests, the
benchmarks and course scripts all use. Imported lazily so that `import
nsbridge` stays cheap.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Engine", "RunSpec", "__version__"]


def __getattr__(name: str):
    if name == "Engine":
        from nsbridge.engine.core import Engine

        return Engine
    if name == "RunSpec":
        from nsbridge.engine.containers import RunSpec

        return RunSpec
    raise AttributeError(name)
