"""Installed plugins that are broken or that clash break only their own names, end to end through the CLI (run in
this process, with the plugins on the path for each call alone).

Four real wheels are installed next to vatt: a good plugin, one whose dependency is missing, one with a
syntax error, and one that claims a name the good plugin also claims.
"""
import json
import sys

import pytest
from plugin_wheels import ROOT, install_wheels, run_vatt, write_package

from vatt import registry as reg
from vatt.errors import RegistryError
from vatt.registry import get
from vatt.testing.plugins import plugin_site

GOOD_HEAD = """
    import torch.nn as nn

    class GoodHead(nn.Module):
        '''One Linear into S_va.'''
        vatt_example = {"in_dim": 4}

        def __init__(self, *, in_dim: int, dim: int = 8):
            super().__init__()
            self.projection = nn.Linear(in_dim, dim)

        def forward(self, feature):
            return {"va": self.projection(feature)}
    """
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    sources = [
        write_package(root / "good", "vatt-good", "good_mod", GOOD_HEAD,
                      {"vatt.heads": {"good_head": "good_mod:GoodHead", "clash_head": "good_mod:GoodHead"}}),
        write_package(root / "other", "vatt-other", "other_mod", GOOD_HEAD,
                      {"vatt.heads": {"clash_head": "other_mod:GoodHead"}}),
        write_package(root / "missing", "vatt-missing-dep", "missing_mod", "import nonexistent_dependency_xyz\n",
                      {"vatt.heads": {"missing_head": "missing_mod:Head"}}),
        write_package(root / "syntax", "vatt-syntax", "syntax_mod", "def head(:\n    pass\n",
                      {"vatt.heads": {"syntax_head": "syntax_mod:head"}}),
    ]
    install_wheels(sources, root / "site")
    return root / "site"


def test_list_shows_everything_that_works_and_each_failure(site):
    result = run_vatt(site, "--list", "heads")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["good_head", "[vatt-good"] and "0.1.0]" in line for line in lines)
    assert any(line.strip().startswith("fac_video") for line in lines)  # vatt's own heads are all there
    failures = {line.split("'")[1]: line for line in lines if line.startswith("plugin ")}
    assert set(failures) == {"missing_head", "syntax_head", "clash_head"}
    assert "vatt-missing-dep" in failures["missing_head"] and "nonexistent_dependency_xyz" in failures["missing_head"]
    assert "vatt-syntax" in failures["syntax_head"] and "SyntaxError" in failures["syntax_head"]
    assert "vatt-good" in failures["clash_head"] and "vatt-other" in failures["clash_head"]


def test_list_as_json_names_each_failure_beside_what_works(site):
    result = run_vatt(site, "--list", "heads", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert {"good_head", "fac_video"} <= {e["name"] for e in listed["heads"]}
    failures = {f["name"]: f for f in listed["plugin_failures"]}
    assert set(failures) == {"missing_head", "syntax_head", "clash_head"}
    assert failures["missing_head"]["package"] == "vatt-missing-dep" and failures["missing_head"]["kind"] == "heads"
    assert "nonexistent_dependency_xyz" in failures["missing_head"]["error"]
    assert "SyntaxError" in failures["syntax_head"]["error"]
    assert "vatt-other" in failures["clash_head"]["error"]


def test_a_config_using_a_good_plugin_works_beside_broken_ones(site):
    result = run_vatt(site, QUICKSTART, "model.modalities.audio.head={type: good_head, dim: 128}", "--summary")
    assert result.returncode == 0, result.stderr
    assert "audio/head" in result.stdout


def test_using_broken_or_clashing_names_reports_each_real_error(site):
    heads = {"audio": "missing_head", "text": "syntax_head", "video": "clash_head"}
    result = run_vatt(site, QUICKSTART, *(f"model.modalities.{m}.head={{type: {h}}}" for m, h in heads.items()),
                      "--summary")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    problems = {line.split("'")[1]: line for line in result.stderr.splitlines() if line.startswith("  - ")}
    assert set(problems) == {"missing_head", "syntax_head", "clash_head"}  # all at once, one line each
    missing, syntax, clash = problems["missing_head"], problems["syntax_head"], problems["clash_head"]
    assert "model.modalities.audio.head.type" in missing and "vatt-missing-dep" in missing
    assert "ModuleNotFoundError: No module named 'nonexistent_dependency_xyz'" in missing
    assert "vatt-syntax" in syntax and "SyntaxError" in syntax and "syntax_mod.py, line 1" in syntax
    assert "vatt-good" in clash and "vatt-other" in clash


def test_the_registry_chains_the_plugins_exception(site):
    with plugin_site(site), pytest.raises(RegistryError) as raised:
        get("heads", "missing_head")
    cause = raised.value.__cause__
    assert isinstance(cause, ModuleNotFoundError) and cause.name == "nonexistent_dependency_xyz"


def test_a_plugin_site_is_forgotten_after_its_block(site):
    """What plugin_site brought (the plugin's modules, its registry entries and failures) is gone afterwards."""
    with plugin_site(site):
        assert get("heads", "good_head").provider == "vatt-good"
        assert run_vatt(site, "--list", "heads").returncode == 0
    assert not [name for name in sys.modules if name.endswith("_mod") and name.split("_")[0] in
                ("good", "other", "missing", "syntax")]
    with pytest.raises(RegistryError, match="unknown head 'good_head'"):
        get("heads", "good_head")
    assert not [f for f in reg.registry("heads").failures() if f.provider.startswith("vatt-")]
