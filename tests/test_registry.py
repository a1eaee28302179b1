import sys
import textwrap

import pytest

from vatt import registry as reg
from vatt.errors import ConfigError, RegistryError
from vatt.registry import build, check_kwargs, register


@pytest.fixture
def fresh(monkeypatch):
    """Empty registries with the built-ins marked loaded, so tests see only what they register."""
    monkeypatch.setattr(reg, "REGISTRIES", {k: reg.Registry(k) for k in reg.KINDS})
    monkeypatch.setitem(reg._builtins_state, "loaded", True)
    return reg.REGISTRIES


def make_plugin(tmp_path, monkeypatch, dist, module, source, entry_points):
    """A plugin installed the way pip does it: a module plus a .dist-info folder with entry_points.txt."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_register_and_get(fresh):
    @register("heads", "toy", example={"in_dim": 3})
    class Toy:
        """A toy head."""
        def __init__(self, in_dim: int, scale: float = 1.0):
            self.in_dim, self.scale = in_dim, scale

    entry = reg.get("heads", "toy")
    assert entry.obj is Toy and entry.example == {"in_dim": 3}
    assert reg.describe(entry) == "A toy head."
    built = build("heads", {"type": "toy", "scale": 2}, "model.head", in_dim=4)
    assert (built.in_dim, built.scale) == (4, 2)


def test_same_name_twice_names_both_sources(fresh):
    @register("losses", "dup")
    def first():
        return 1

    with pytest.raises(RegistryError, match="registered twice") as info:
        @register("losses", "dup")
        def second():
            return 2
    assert "first" in str(info.value) and "second" in str(info.value)


def test_unknown_name_suggests_close_ones(fresh):
    @register("backbones", "vit_base")
    def vit_base():
        return None

    with pytest.raises(RegistryError) as info:
        reg.get("backbones", "vit_bse", where="model.modalities.video.backbone.type")
    msg = str(info.value)
    assert "did you mean 'vit_base'" in msg.lower() and "model.modalities.video.backbone.type" in msg


def test_check_kwargs_reports_every_problem(fresh):
    @register("optimizers", "toy_opt")
    def toy_opt(params, lr: float, momentum: float = 0.9, nesterov: bool = False):
        return None

    entry = reg.get("optimizers", "toy_opt")
    problems = check_kwargs(entry, {"momentun": 0.5, "nesterov": "yes", "params": 1}, "optimizer",
                            injected={"params"})
    text = "\n".join(problems)
    assert "optimizer.momentun" in text and "did you mean 'momentum'" in text
    assert "optimizer.nesterov: expected bool" in text
    assert "optimizer.params: set by the task" in text
    assert "needs 'lr'" in text
    assert len(problems) == 4


def test_build_raises_config_error(fresh):
    @register("schedules", "flat")
    class Flat:
        def __init__(self, base_lr: float):
            self.base_lr = base_lr

    with pytest.raises(ConfigError, match="schedule.bogus"):
        build("schedules", {"type": "flat", "base_lr": 1.0, "bogus": 1}, "schedule")


def test_plugin_entry_point_loads_lazily(fresh, tmp_path, monkeypatch):
    make_plugin(tmp_path, monkeypatch, "vatt-toyplugin", "toyplugin_mod", """
        class SpecHead:
            '''Spectrogram head.'''
            vatt_example = {"in_dim": 2}
            def __init__(self, in_dim):
                self.in_dim = in_dim
        """, """
        [vatt.heads]
        spec_head = toyplugin_mod:SpecHead
        """)
    assert "toyplugin_mod" not in sys.modules
    assert "spec_head" in reg.registry("heads").names()
    assert "toyplugin_mod" not in sys.modules  # listing names does not import
    entry = reg.get("heads", "spec_head")
    assert entry.provider == "vatt-toyplugin" and entry.version == "1.2.3"
    assert entry.example == {"in_dim": 2}


def test_broken_plugin_breaks_only_its_names(fresh, tmp_path, monkeypatch):
    make_plugin(tmp_path, monkeypatch, "vatt-broken", "broken_mod", """
        import a_module_that_does_not_exist
        """, """
        [vatt.heads]
        broken_head = broken_mod:Head
        """)

    @register("heads", "fine")
    def fine():
        return 1

    assert reg.get("heads", "fine").obj is fine
    with pytest.raises(RegistryError, match="vatt-broken") as info:
        reg.get("heads", "broken_head")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    # an unrelated unknown name mentions the failed plugin too
    with pytest.raises(RegistryError, match="failed to import"):
        reg.get("heads", "nothing_like_it")


def test_two_plugins_same_name_fail_only_for_that_name(fresh, tmp_path, monkeypatch):
    make_plugin(tmp_path / "a", monkeypatch, "vatt-one",
                "one_mod", "class H:\n    pass\nclass Other:\n    pass\n",
                "[vatt.heads]\nclash = one_mod:H\nonly_one = one_mod:Other\n")
    make_plugin(tmp_path / "b", monkeypatch, "vatt-two",
                "two_mod", "class H:\n    pass\n", "[vatt.heads]\nclash = two_mod:H\n")
    assert reg.get("heads", "only_one").provider == "vatt-one"
    with pytest.raises(RegistryError) as info:
        reg.get("heads", "clash")
    assert "vatt-one" in str(info.value) and "vatt-two" in str(info.value)


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="kinds are"):
        reg.registry("widgets")
