"""Finding the compiled vatt ops: the prebuilt ``vatt._C``, a just-in-time build, or none (Python schemas).

Order of preference, decided once per process:
1. ``vatt._C`` from ``pip install -e .``, if it was built for this very torch (read from the binary before
   loading it: a library built against another torch may crash rather than fail to import);
2. a just-in-time build of csrc/ with torch.utils.cpp_extension.load, if the sources and a compiler are there;
3. none: the schemas of ``schemas.def`` are defined from Python and the pure-PyTorch composites serve every device.
Any step that is skipped or fails is reported once as a RuntimeWarning. ``VATT_OPS=prebuilt`` stops after
step 1, ``VATT_OPS=composite`` goes straight to step 3.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

LOG = logging.getLogger("vatt.ops")
NAMESPACE = "vatt"
SCHEMA_FILE = Path(__file__).with_name("schemas.def")
_SCHEMA_LINE = re.compile(r'"([^"\\]+)",')
CSRC = Path(__file__).resolve().parents[2] / "csrc"
_BUILD_INFO = re.compile(rb"VATT_BUILD_INFO torch=([^;\x00]*);")


def read_schemas(path: Path = SCHEMA_FILE) -> dict[str, str]:
    """{op name: schema} from ``schemas.def``, the file that TORCH_LIBRARY(vatt, m) in csrc/vatt_ops.cpp includes."""
    schemas = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        match = _SCHEMA_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"{path}:{number}: expected a schema as one C string literal and a comma, got {line!r}")
        schema = match.group(1)
        schemas[schema.split("(", 1)[0]] = schema
    return schemas


SCHEMAS = read_schemas()


@dataclass
class Extension:
    """Where the ops' schemas and compiled kernels came from."""
    source: str  # "vatt._C", "jit" or "python" (schemas defined from Python, no compiled kernels)
    path: str | None = None
    built_for_torch: str | None = None
    notes: list[str] = field(default_factory=list)


def built_for_torch(library: Path) -> str | None:
    """The torch version recorded in a compiled vatt library, read without loading it."""
    match = _BUILD_INFO.search(library.read_bytes())
    return match.group(1).decode() if match else None


def _load_prebuilt(notes: list[str]) -> Extension | None:
    spec = importlib.util.find_spec("vatt._C")
    if spec is None or spec.origin is None:
        notes.append("vatt._C is not built (run `pip install --no-build-isolation -e .`)")
        return None
    built_for = built_for_torch(Path(spec.origin))
    if built_for != torch.__version__:
        notes.append(f"vatt._C at {spec.origin} was built for torch {built_for}, this is torch {torch.__version__}")
        return None
    try:
        importlib.import_module("vatt._C")
    except (ImportError, OSError) as error:
        notes.append(f"vatt._C failed to load: {error}")
        return None
    return Extension("vatt._C", spec.origin, built_for)


def _compile_just_in_time(notes: list[str]) -> Extension | None:
    sources = [CSRC / "vatt_ops.cpp", *sorted((CSRC / "cpu").glob("*.cpp"))]
    if not sources[0].exists():
        notes.append(f"no C++ sources at {CSRC} to compile")
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        notes.append("no C++ compiler found to build the ops just in time")
        return None
    from torch.utils.cpp_extension import load

    # The name carries the torch version: the build cache must not hand a library to another torch.
    name = "vatt_ops_torch_" + re.sub(r"\W", "_", torch.__version__)
    warnings.warn(f"vatt.ops: {'; '.join(notes)}; compiling the C++ ops just in time (a minute or two, cached "
                  f"afterwards).", RuntimeWarning, stacklevel=3)
    try:
        path = load(name=name, sources=[str(s) for s in sources], extra_cflags=["-O3", "-fopenmp"],
                    extra_ldflags=["-fopenmp"], is_python_module=False)
    except Exception as error:  # a broken toolchain must not make the package unusable
        notes.append(f"just-in-time build failed: {error}")
        return None
    return Extension("jit", str(path), torch.__version__, list(notes))


def _define_in_python(notes: list[str]) -> Extension:
    library = torch.library.Library(NAMESPACE, "DEF")
    for schema in SCHEMAS.values():
        library.define(schema)
    _KEEP_ALIVE.append(library)
    warnings.warn(f"vatt.ops: {'; '.join(notes)}; the pure-PyTorch composites serve every device (correct, but "
                  f"slower and without the memory savings of the C++ kernels).", RuntimeWarning, stacklevel=3)
    return Extension("python", notes=list(notes))


_KEEP_ALIVE: list[torch.library.Library] = []  # a Library unregisters its definitions when collected


def load() -> Extension:
    """Make the vatt:: schemas exist, with compiled CPU (and CUDA) kernels when possible."""
    mode = os.environ.get("VATT_OPS", "auto")
    if mode not in ("auto", "prebuilt", "composite"):
        raise ValueError(f"VATT_OPS must be auto, prebuilt or composite, got {mode!r}")
    notes: list[str] = []
    if mode == "composite":
        notes.append("VATT_OPS=composite")
        return _define_in_python(notes)
    extension = _load_prebuilt(notes)
    if extension is None and mode == "auto":
        extension = _compile_just_in_time(notes)
    if extension is None:
        return _define_in_python(notes)
    LOG.info("vatt.ops: kernels from %s (%s)", extension.source, extension.path)
    return extension
