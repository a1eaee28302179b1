"""vatt.components is the one list of the modules that register built-in components."""
import ast
import subprocess
import sys
from pathlib import Path

from vatt.components import BUILTIN_MODULES

PACKAGE = Path(__file__).resolve().parents[1] / "vatt"


def registering_modules() -> set[str]:
    """Every vatt module whose top level registers a component (``@register(...)`` or ``register(...)(...)``)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Name) and node.func.id == "register"
                 and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)]
        if calls:
            found.add(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    return found


def test_every_module_that_registers_components_is_listed_once():
    assert len(set(BUILTIN_MODULES)) == len(BUILTIN_MODULES)
    assert set(BUILTIN_MODULES) == registering_modules()


def test_importing_the_packages_registers_nothing_until_a_lookup():
    """The packages' __init__ files do not import component modules for their side effects (vatt.data
    re-exports SyntheticClips, nothing more): the registry's first lookup imports what vatt.components lists."""
    code = ("import sys, vatt.data, vatt.models, vatt.engine, vatt.evaluators, vatt.tasks\n"
            f"BUILTIN_MODULES = {BUILTIN_MODULES!r}\n"
            "reexported = {'vatt.data.synthetic', 'vatt.data.datasets.manifest'}  # SyntheticClips and its base\n"
            "print(sorted(m for m in BUILTIN_MODULES if m in sys.modules and m not in reexported))\n"
            "from vatt.registry import registry\n"
            "registry('tasks').get('pretrain')\n"
            "print(all(m in sys.modules for m in BUILTIN_MODULES))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", out[0]
    assert out[1] == "True"
