"""The layers of docs/ARCHITECTURE.md, checked on the imports: data flows down and never back
up. A change that makes a lower layer import a higher one fails here."""

import ast
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent.parent / "apps"

DOMAIN = {"accounts", "attestation", "audit", "components", "dashboard", "devices", "personalization", "policies"}
# What each package may import from the project (besides itself).
ALLOWED = {
    "teep.wire": set(),  # the wire format: plain Python, nothing of the project
    "teep": {"teep.wire"},  # tokens, TAM keys, inspectors: below the domain apps
    **{app: {"teep", "teep.wire"} | DOMAIN for app in DOMAIN},
    "tam": {"teep", "teep.wire"} | DOMAIN,  # the engine, on top
    "api": {"teep", "teep.wire"} | DOMAIN,
    "agent": {"teep.wire"},  # talks to the TAM over HTTP only (its commands may read TAM keys)
}


def package_of(path: Path) -> str:
    parts = path.relative_to(APPS).parts
    if parts[0] == "teep" and len(parts) > 1 and parts[1] == "wire":
        return "teep.wire"
    return parts[0]


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    found = set()
    for name in names:
        if name.startswith("apps."):
            parts = name.split(".")
            found.add("teep.wire" if parts[1:3] == ["teep", "wire"] else parts[1])
    return found


def source_files():
    for path in sorted(APPS.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        package = package_of(path)
        if package == "agent" and "management" in path.parts:
            continue  # commands wire the agent to this TAM's keys for people
        yield pytest.param(path, id=str(path.relative_to(APPS)))


@pytest.mark.parametrize("path", list(source_files()))
def test_imports_only_go_down_the_layers(path):
    package = package_of(path)
    allowed = ALLOWED.get(package, set()) | {package}
    wrong = imported_packages(path) - allowed
    assert not wrong, f"{path.relative_to(APPS)} ({package}) imports {sorted(wrong)}"


def test_the_wire_format_does_not_import_django():
    for path in (APPS / "teep" / "wire").rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m == "django" or m.startswith("django.") for m in modules), path
