"""The package's imports point one way: each module imports only from lower floors (docs/architecture.md)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vatt"

# the floor of each top-level unit of vatt (a subpackage or a module), as docs/architecture.md tabulates them
FLOORS = {
    "errors": 0, "messages": 0, "installed": 0, "files": 0,
    "registry": 1, "ranges": 1, "ops": 1, "metrics": 1,
    "models": 2, "data": 2, "engine": 2, "config": 2,
    "losses": 3, "evaluators": 3,
    "tasks": 4,
    "run": 5, "convert": 5, "pretrained": 5, "components": 5, "plugin": 5, "testing": 5,
    "search": 6,
}
# command-line entry points sit on top of their own package
COMMANDS = {"data.__main__": 5}


def unit_of(module: str) -> str:
    return module.split(".")[1]


def imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("vatt"):
            if node.module == "vatt":
                found |= {f"vatt.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("vatt.")}
    return {name for name in found if name.count(".") >= 1}


def test_every_module_imports_only_from_its_own_unit_or_lower_floors():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if module in ("vatt.__init__", "vatt.__main__") or module.endswith("._C"):
            continue
        unit = unit_of(module)
        floor = COMMANDS.get(module.split(".", 1)[1], FLOORS[unit])
        for target in imports(path, module):
            other = unit_of(target)
            if other != unit and FLOORS[other] >= floor:
                upward.append(f"{module} (floor {floor}) imports {target} (floor {FLOORS[other]})")
    assert not upward, "\n".join(upward)


def test_every_unit_has_a_floor():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    assert units == set(FLOORS)
