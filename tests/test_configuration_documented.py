"""Every environment variable the settings read is in README's configuration table (and the
table documents nothing the settings no longer read). The settings' source is parsed: a new
env("NAME") or env.int("NAME") without a README row fails here."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "tam_portal" / "settings.py"
README = ROOT / "README.md"
# Read by a library rather than by settings.py, and documented in the table all the same.
READ_ELSEWHERE = {"PROMETHEUS_MULTIPROC_DIR"}


def env_reads(source: str) -> set[str]:
    """Names passed to env(...), env.<cast>(...), env_secret(...), os.environ.get(...),
    os.getenv(...), os.environ[...] (env_secret's own body builds names: skipped)."""
    tree = ast.parse(source)
    helper_bodies = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name == "env_secret"
        for node in ast.walk(fn)
    }
    names, computed = set(), []
    for node in ast.walk(tree):
        if id(node) in helper_bodies:
            continue
        if isinstance(node, ast.Call) and _is_env_reader(node.func) and node.args:
            target = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            target = node.slice
        else:
            continue
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            names.add(target.value)
        else:
            computed.append(ast.unparse(node))
    assert not computed, f"settings read environment variables by computed names: {computed}"
    return names


def _is_env_reader(func: ast.expr) -> bool:
    text = ast.unparse(func)
    return text in ("env", "env_secret", "os.environ.get", "os.getenv") or (
        isinstance(func, ast.Attribute) and ast.unparse(func.value) == "env"
    )


def documented(readme: str) -> set[str]:
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def test_the_parser_finds_what_settings_read():
    source = 'env.int("A", default=1)\nenv("B")\nenv_secret("C")\nos.environ.get("D")\nX = 1'
    assert env_reads(source) == {"A", "B", "C", "D"}


def test_every_environment_variable_the_settings_read_is_documented():
    missing = env_reads(SETTINGS.read_text()) - documented(README.read_text())
    assert not missing, f"README 'Configuration' lacks: {sorted(missing)}"


def secret_file_variants(source: str) -> set[str]:
    """env_secret("NAME") also reads NAME_FILE."""
    return {f"{name}_FILE" for name in re.findall(r'env_secret\("([A-Z0-9_]+)"', source)}


def test_the_configuration_table_documents_only_what_is_read():
    source = SETTINGS.read_text()
    read = env_reads(source) | secret_file_variants(source) | READ_ELSEWHERE
    stale = documented(README.read_text()) - read
    assert not stale, f"documented but never read: {sorted(stale)}"
