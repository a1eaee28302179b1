"""What is installed is read once per state of the installation, and a change to it is seen at once."""
import importlib.metadata as metadata
import sys

import pytest

from vatt import installed


def write_distribution(site, name, version, package, entry_points=""):
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"  # the folder name of the wheel standard
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{package}\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def calls(monkeypatch):
    """How often each importlib.metadata reader behind `installed` really ran."""
    counts = {"packages": 0, "entry_points": 0}
    real_packages, real_entry_points = metadata.packages_distributions, metadata.entry_points

    def packages():
        counts["packages"] += 1
        return real_packages()

    def entry_points(**kwargs):
        counts["entry_points"] += 1
        return real_entry_points(**kwargs)

    monkeypatch.setattr(metadata, "packages_distributions", packages)
    monkeypatch.setattr(metadata, "entry_points", entry_points)
    return counts


def test_the_installation_is_read_once_while_it_stays_the_same(site, calls):
    write_distribution(site, "demo-dist", "1.2", "demo_pkg", "[vatt.tasks]\ndemo = demo_pkg:Demo\n")
    for _ in range(40):  # as many as the built-in registrations of one process start
        assert installed.distribution_of("demo_pkg") == ("demo-dist", "1.2")
        assert installed.distribution_of("vatt")[0] == "vatt"
        assert [ep.name for ep in installed.entry_points("vatt.tasks") if ep.value.startswith("demo_pkg")] == ["demo"]
    assert calls == {"packages": 1, "entry_points": 1}


def test_a_distribution_installed_or_removed_in_a_site_on_the_path_is_seen_at_once(site, calls):
    assert installed.distribution_of("late_pkg") == ("late_pkg", "")  # nothing ships it yet
    assert not [ep for ep in installed.entry_points("vatt.tasks") if ep.value.startswith("late_pkg")]
    write_distribution(site, "late-dist", "0.3", "late_pkg", "[vatt.tasks]\nlate = late_pkg:Late\n")
    assert installed.distribution_of("late_pkg") == ("late-dist", "0.3")
    assert [ep.name for ep in installed.entry_points("vatt.tasks") if ep.value.startswith("late_pkg")] == ["late"]
    for path in sorted(site.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert installed.distribution_of("late_pkg") == ("late_pkg", "")
    assert calls == {"packages": 3, "entry_points": 2}


def test_a_site_put_on_the_path_is_seen(tmp_path, calls):
    other = tmp_path / "other"
    other.mkdir()
    write_distribution(other, "other-dist", "2.0", "other_pkg")
    assert installed.distribution_of("other_pkg") == ("other_pkg", "")
    sys.path.insert(0, str(other))
    try:
        assert installed.distribution_of("other_pkg") == ("other-dist", "2.0")
    finally:
        sys.path.remove(str(other))
    assert installed.distribution_of("other_pkg") == ("other_pkg", "")
