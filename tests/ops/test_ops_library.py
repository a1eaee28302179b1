"""Loading the kernels: schemas, build-version checks, the fallbacks, and the `python -m vatt.ops` report."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vatt.ops as ops
from vatt.ops import library

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.parametrize("name", list(library.SCHEMAS))
def test_the_schema_file_equals_the_registered_schemas(name):
    registered = getattr(torch.ops.vatt, name).default._schema
    assert str(registered) == str(torch._C.parse_schema(f"vatt::{library.SCHEMAS[name]}"))


def test_the_schemas_are_written_once():
    """schemas.def is their one source: the library registers exactly its ops, and no C++ file spells a schema."""
    registered = {name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names() if name.startswith("vatt::")}
    assert registered == set(library.SCHEMAS)
    sources = [path for path in library.CSRC.rglob("*") if path.suffix in (".cpp", ".cu", ".h")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not [name for name in library.SCHEMAS if f'"{name}(' in text], path


def test_the_schema_file_is_read_line_by_line_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / "schemas.def"
    path.write_text('// a comment\n\n"one(Tensor x) -> Tensor",\n  "two(Tensor x, int n) -> (Tensor, Tensor)",\n')
    assert library.read_schemas(path) == {"one": "one(Tensor x) -> Tensor",
                                          "two": "two(Tensor x, int n) -> (Tensor, Tensor)"}
    path.write_text('"one(Tensor x) -> Tensor",\n"two(Tensor x) "\n  "-> Tensor",\n')
    with pytest.raises(ValueError, match=r"schemas.def:2: expected a schema as one C string literal"):
        library.read_schemas(path)


def test_the_cpu_is_served_by_the_compiled_kernels():
    """The op tests hold whatever serves the CPU to the references; that must be the C++ kernels (in CI those of
    vatt._C, which `pip install -e .` builds), not the pure-PyTorch fallback standing in for a missing build.
    Only VATT_OPS=composite outside CI asks for the fallback (the XLA lane runs tests/xla alone)."""
    if os.environ.get("VATT_OPS") == "composite" and not IN_CI:
        pytest.skip("VATT_OPS=composite asks for the pure-PyTorch composites")
    served = {name: devices["cpu"] for name, devices in ops.implementations()["ops"].items()}
    assert all(kernel.startswith("C++ (") for kernel in served.values()), (served, ops.EXTENSION.notes)
    if IN_CI:
        assert ops.EXTENSION.source == "vatt._C", ops.EXTENSION.notes


def test_build_version_is_read_from_the_binary_without_loading_it(tmp_path):
    fake = tmp_path / "_C.so"
    fake.write_bytes(b"\x7fELF\x00junk\x00VATT_BUILD_INFO torch=1.2.3+cu999;\x00more")
    assert library.built_for_torch(fake) == "1.2.3+cu999"
    fake.write_bytes(b"\x7fELF no marker")
    assert library.built_for_torch(fake) is None
    if ops.EXTENSION.source == "vatt._C":
        assert library.built_for_torch(Path(ops.EXTENSION.path)) == torch.__version__


def test_a_library_built_for_another_torch_is_not_loaded(monkeypatch):
    monkeypatch.setattr(library, "built_for_torch", lambda path: "0.0.1")
    if library.importlib.util.find_spec("vatt._C") is None:
        pytest.skip("vatt._C is not built")
    notes = []
    assert library._load_prebuilt(notes) is None
    assert "built for torch 0.0.1" in notes[0] and torch.__version__ in notes[0]


def test_no_compiler_means_no_just_in_time_build(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    notes = []
    assert library._compile_just_in_time(notes) is None
    assert "no C++ compiler" in notes[-1]


def _report(*flags) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vatt.ops", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "VATT_OPS": "prebuilt"})


def test_json_report_names_the_implementation_of_every_op_and_device():
    result = _report("--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["torch"] == torch.__version__ and set(report["ops"]) == set(library.SCHEMAS)
    for devices in report["ops"].values():
        assert set(devices) == {"cpu", "cuda", "xla"} and devices["xla"] == "composite"
    if report["extension"]["source"] == "vatt._C":
        assert report["extension"]["built_for_torch"] == torch.__version__
        assert all(devices["cpu"].startswith("C++ (vatt._C") for devices in report["ops"].values())


def test_plain_report_lists_every_op():
    result = _report()
    assert result.returncode == 0, result.stderr
    assert all(f"{name}:" in result.stdout for name in library.SCHEMAS)


def test_composite_fallback_works_and_says_so_once():
    code = """
import warnings, torch
warnings.simplefilter("always")
import vatt.ops as ops
from vatt.losses import contrastive_rows
from vatt.testing import reference
x, w, keep = torch.randn(2, 3, 4, 8, 8), torch.randn(5, 96, requires_grad=True), torch.tensor([7, 0])
out = ops.patch_embed(x, (2, 4, 4), w, keep=keep)
out.sum().backward()
assert torch.allclose(out, reference.patch_embed(x, (2, 4, 4), w, keep=keep))
v = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
assert torch.allclose(ops.contrastive_rows(v, v[:, None], v, v[:, None]),
                      contrastive_rows(v, v[:, None], v, v[:, None], *[torch.ones(4, dtype=torch.bool)] * 2, 0.07))
print(sorted({d["cpu"] for d in ops.implementations()["ops"].values()}))
"""
    result = _run(code, VATT_OPS="composite")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['composite']"
    assert result.stderr.count("RuntimeWarning: vatt.ops:") == 1 and "VATT_OPS=composite" in result.stderr


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("VATT_OPS", "fastest")
    with pytest.raises(ValueError, match="VATT_OPS"):
        library.load()
