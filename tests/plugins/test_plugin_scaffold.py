"""``python -m vatt.plugin new NAME``: the skeleton builds as a wheel, installs, and its own tests pass."""
import pytest
import tomllib
from plugin_wheels import install_wheels, run_python, run_vatt

from vatt.plugin import main


def test_new_plugin_installs_and_its_tests_pass(tmp_path, capsys):
    assert main(["new", "optical-flow", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "vatt-optical-flow"
    assert f"wrote {root}" in capsys.readouterr().out
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "vatt-optical-flow"
    assert project["project"]["entry-points"]["vatt.heads"] == {
        "optical_flow_mlp": "vatt_optical_flow.head:OpticalFlowMLPHead"}

    install_wheels([root], tmp_path / "site")
    tests = run_python(tmp_path / "site", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests"))
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    listed = run_vatt(tmp_path / "site", "--list", "heads")
    assert any(line.split()[:3] == ["optical_flow_mlp", "[vatt-optical-flow", "0.1.0]"]
               for line in listed.stdout.splitlines())


def test_an_existing_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "vatt-depth").mkdir()
    (tmp_path / "vatt-depth" / "keep.txt").write_text("mine")
    assert main(["new", "depth", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "vatt-depth").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("name", ["Depth", "2d-flow", "flow-", "flow.v2", "a b"])
def test_names_that_cannot_become_a_package_are_refused(tmp_path, capsys, name):
    assert main(["new", name, "--dir", str(tmp_path)]) == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_prefix_and_underscores_name_the_same_package(tmp_path):
    assert main(["new", "vatt-depth_maps", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "vatt-depth-maps"
    assert (root / "src" / "vatt_depth_maps" / "head.py").is_file()
    assert (root / "tests" / "test_vatt_depth_maps.py").is_file()
