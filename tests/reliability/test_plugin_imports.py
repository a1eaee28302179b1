"""Plugins that misbehave break only their own names: one that calls sys.exit() on import, one that claims a
name vatt already has; messages name a kind by its singular; a built-in module that fails to import fails the
same way on every lookup."""
import textwrap
from pathlib import Path

import pytest

from vatt import registry as reg
from vatt.run import main
from vatt.testing.plugins import plugin_site

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def install(site: Path, dist: str, module: str, source: str, entry_points: str) -> None:
    """A plugin laid out as pip installs one: a module and a .dist-info folder with its entry points."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install(site, "vatt-exiting", "exiting_mod", "import sys\nsys.exit(3)\n",
            "[vatt.heads]\nexiting_head = exiting_mod:Head\n")
    install(site, "vatt-shadow", "shadow_mod", """
        def nce(**kwargs):
            '''A plugin's own nce, which vatt's built-in one hides.'''
        """, "[vatt.losses]\nnce = shadow_mod:nce\n")
    return site


def test_list_prints_everything_beside_a_plugin_that_exits_and_warns_of_a_shadowed_name(site, capsys):
    with plugin_site(site):
        code = main(["--list"])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    lines = out.splitlines()
    assert "heads:" in lines and "losses:" in lines and any(line.split()[:1] == ["fac_video"] for line in lines)
    assert "plugin vatt-exiting failed to load heads 'exiting_head': SystemExit: 3" in lines
    (warning,) = [line for line in lines if line.startswith("warning:")]
    assert "loss name 'nce' is claimed by vatt.losses:" in warning and "(package vatt)" in warning
    assert "plugin vatt-shadow (shadow_mod:nce)" in warning


def test_a_config_using_either_name_is_an_error_naming_the_packages(site, capsys):
    with plugin_site(site):
        code = main([str(QUICKSTART), "model.modalities.audio.head={type: exiting_head}", "--summary"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err[-2000:]
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert any("head 'exiting_head' (at model.modalities.audio.head.type) comes from plugin vatt-exiting, which "
               "failed to import: SystemExit: 3" in p for p in problems), problems
    shadowed = [p for p in problems if "'nce'" in p]  # losses.0 of the quickstart is nce
    assert len(shadowed) == 1 and "(package vatt)" in shadowed[0] and "vatt-shadow" in shadowed[0]
    assert "losses.0.type" in shadowed[0]


def test_an_unknown_name_is_named_by_its_kind_in_the_singular(capsys):
    assert main([str(QUICKSTART), "losses.0.type=ncee", "--summary"]) == 2
    assert "unknown loss 'ncee' (at losses.0.type). Did you mean 'nce'" in capsys.readouterr().err


@pytest.fixture
def fresh(monkeypatch):
    """Empty registries whose built-ins are not imported yet."""
    monkeypatch.setattr(reg, "REGISTRIES", {k: reg.Registry(k) for k in reg.KINDS})
    monkeypatch.setattr(reg, "_builtins_state", {"loaded": False, "loading": False, "error": None})


def test_a_builtin_module_that_fails_to_import_fails_again_on_every_lookup(fresh, tmp_path, monkeypatch):
    (tmp_path / "half_builtins.py").write_text(textwrap.dedent("""
        from vatt.registry import register

        @register("losses", "half_loss")
        def half_loss():
            '''Registered before the import fails.'''

        import a_dependency_that_is_not_installed
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(reg, "BUILTINS_MODULE", "half_builtins")
    for _ in range(3):
        with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
            reg.get("losses", "half_loss")


def test_ctrl_c_while_a_plugin_imports_is_not_taken_for_a_broken_plugin(fresh, tmp_path, monkeypatch):
    monkeypatch.setitem(reg._builtins_state, "loaded", True)
    install(tmp_path, "vatt-slow", "slow_mod", "raise KeyboardInterrupt\n", "[vatt.heads]\nslow_head = slow_mod:Head\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        reg.get("heads", "slow_head")
    assert reg.registry("heads").failures() == []
