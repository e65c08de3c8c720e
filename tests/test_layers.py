"""The package's layers, lowest first, and a check that no module imports a higher layer.

Every import counts: module level, inside functions, and under ``TYPE_CHECKING``. The engine and
the roles see WebRTC only through the seam (:mod:`p2pml_py.rtc.transport`), never the aiortc
backend, so a second backend changes neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import p2pml_py

PACKAGE = Path(p2pml_py.__file__).parent

#: Lowest first. A module may import its own layer and the layers before it.
LAYERS = (
    "base",  # errors, limits, asyncio primitives, back-off, token bucket
    "wire",  # the peer protocol, sans-I/O
    "identity",  # info hashes, swarm ids, segment ids
    "hls",  # playlists and the origin client
    "tracker",  # tracker messages, registry, client and server
    "rtc",  # the transport seam; the aiortc backend behind it
    "engine",  # sessions, swarms, stores
    "roles",  # seeder, viewer, scheduler, player model
    "testing",  # the synthetic origin and in-memory fakes
    "apps",  # cli, superpeer
    "loadtest",  # Locust virtual viewers and their viewer host
    "harness",  # the interop harness (Playwright, browsers)
)
#: Layers that may name the aiortc backend directly (everyone else uses the seam).
BACKEND = "p2pml_py.rtc.aiortc_backend"
BACKEND_USERS = ("rtc", "testing", "apps", "loadtest", "harness")
#: Modules at the package root that sit above everything (entry points).
TOP = ("__init__", "__main__")


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "p2pml_py", module
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module) of every ``p2pml_py`` import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = (
        module_name(path, root)
        if path.name == "__init__.py"
        else module_name(path, root).rpartition(".")[0]
    )
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if node.module is None or target == "p2pml_py":
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, m) for line, m in found if m == "p2pml_py" or m.startswith("p2pml_py.")]


def violations(root: Path = PACKAGE) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        source = layer_of(module_name(path, root))
        if source in TOP:
            continue
        if source not in rank:
            out.append(f"{path.relative_to(root.parent)}: not in any layer ({source})")
            continue
        for line, target in imports_of(path, root):
            where = f"{path.relative_to(root.parent)}:{line}"
            layer = layer_of(target)
            if layer.startswith("__") and layer not in TOP:
                continue  # the root package's metadata (``from p2pml_py import __version__``)
            if layer in TOP or layer not in rank:
                out.append(f"{where}: imports {target}, which is in no layer")
            elif rank[layer] > rank[source]:
                out.append(f"{where}: {source} imports the higher layer {layer} ({target})")
            elif target.startswith(BACKEND) and source not in BACKEND_USERS:
                out.append(f"{where}: {source} names the aiortc backend ({target}); use the seam")
    return out


def test_every_package_is_a_layer() -> None:
    packages = {layer_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert packages - set(TOP) == set(LAYERS)


def test_no_layer_imports_a_higher_one() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("where", "code", "message"),
    [
        ("wire/bad.py", "from p2pml_py.engine.session import PeerSession\n", "higher layer engine"),
        (
            "engine/bad.py",
            "def f():\n    from p2pml_py.roles import seeder\n",
            "higher layer roles",
        ),
        (
            "engine/bad2.py",
            "from p2pml_py.rtc.aiortc_backend import RtcFactory\n",
            "aiortc backend",
        ),
        ("tracker/bad.py", "from ..rtc import transport\n", "higher layer rtc"),
        ("base/bad.py", "import p2pml_py.apps.cli\n", "higher layer apps"),
    ],
)
def test_the_check_catches_an_upward_import(
    tmp_path: Path, where: str, code: str, message: str
) -> None:
    root = tmp_path / "p2pml_py"
    for layer in LAYERS:
        (root / layer).mkdir(parents=True)
        (root / layer / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / where).write_text(code)
    found = violations(root)
    assert len(found) == 1 and message in found[0], found
