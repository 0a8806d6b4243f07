"""The import rule between parley's layers, read from the source with ``ast``: nothing is imported
and no server is needed.

- The components (``api``, ``gateway``, ``router``, ``reviewer``, ``logger_sink``) never import
  each other: they meet only on the bus and in the store, which is what lets each run alone.
- ``shared/protocol`` (pure wire shapes) imports nothing from ``shared.engine``,
  ``shared.features``, a component or ``parley``, and no I/O library.
- Nothing in ``shared/`` imports a component or ``parley``.

Every import counts, at module level, inside a function or under ``if TYPE_CHECKING:``: each
one is a dependency of the module that writes it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("api", "gateway", "router", "reviewer", "logger_sink")
IO_LIBRARIES = ("redis", "aio_pika", "aiormq", "aiohttp", "websockets")


@dataclass(frozen=True)
class Import:
    source: str  # the importing file, relative to the repository root
    line: int
    module: str  # absolute dotted name; ``from a import b`` gives ``a.b`` (b may be a submodule)

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.module}"


def module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, module: str, *, is_package: bool = False, filename: str = "<source>") -> Iterator[Import]:
    """Every import in ``source``, the code of ``module``, with relative imports made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(filename, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield Import(filename, node.lineno, f"{base}.{alias.name}")


def imports_under(folder: str) -> list[Import]:
    found: list[Import] = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT)
        found.extend(
            imports_in(
                path.read_text(),
                module_name(relative),
                is_package=path.name == "__init__.py",
                filename=str(relative),
            )
        )
    assert found, f"no imports found under {folder}/: is ROOT ({ROOT}) the repository?"
    return found


def within(module: str, packages: Iterable[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def offending(folder: str, forbidden: Iterable[str]) -> list[str]:
    forbidden = tuple(forbidden)
    return [str(imp) for imp in imports_under(folder) if within(imp.module, forbidden)]


def explain(rule: str, broken: list[str]) -> str:
    return f"{rule}:\n  " + "\n  ".join(broken)


def test_components_do_not_import_each_other() -> None:
    broken = [line for c in COMPONENTS for line in offending(c, (other for other in COMPONENTS if other != c))]
    assert not broken, explain("a component imports another (components meet only on the bus and in the store)", broken)


def test_protocol_imports_no_engine_feature_component_or_io_library() -> None:
    forbidden = ("shared.engine", "shared.features", "parley", *COMPONENTS, *IO_LIBRARIES)
    broken = offending("shared/protocol", forbidden)
    assert not broken, explain(f"shared/protocol (pure wire shapes) must not import {', '.join(forbidden)}", broken)


def test_shared_imports_no_component_or_parley() -> None:
    broken = offending("shared", ("parley", *COMPONENTS))
    assert not broken, explain("shared/ must not import a component or parley", broken)


def test_the_scan_sees_every_kind_of_import() -> None:
    source = """
from typing import TYPE_CHECKING
import redis.asyncio
from shared import engine
from . import frames
from ..engine.store import Store
if TYPE_CHECKING:
    from gateway.server import Gateway
def later():
    import aiohttp
"""
    found = {imp.module for imp in imports_in(source, "shared.protocol.envelope")}
    assert {"redis.asyncio", "shared.engine", "shared.protocol.frames", "shared.engine.store.Store"} <= found
    assert {"gateway.server.Gateway", "aiohttp"} <= found
    assert {imp.module for imp in imports_in("from . import ids", "shared.protocol", is_package=True)} == {
        "shared.protocol.ids"
    }
    assert within("shared.engine.store", ["shared.engine"]) and not within("shared.engineering", ["shared.engine"])
