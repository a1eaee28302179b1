"""Build and install vatt.

torch is not a dependency here on purpose: install the torch build that fits your machine first, then

    pip install --no-build-isolation -e .

which compiles the custom ops (csrc/) into ``vatt._C`` against that torch, with CUDA kernels when CUDA is there.
"""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, pattern)))


def _cuda_available() -> bool:
    return torch.cuda.is_available() or (CUDA_HOME is not None and torch.version.cuda is not None)


def _ops_extension():
    # The torch version goes into the binary as text, so vatt.ops can refuse a library built for another torch
    # before loading it (BuildExtension shell-quotes each flag, so the string's quotes reach the compiler).
    version = f'-DVATT_TORCH_VERSION="{torch.__version__}"'
    cxx_flags = ["-O3", "-fopenmp", "-DVATT_PYTHON_MODULE", version]
    sources = _sources("csrc/vatt_ops.cpp") + _sources("csrc/cpu/*.cpp")
    if _cuda_available():
        return CUDAExtension(
            "vatt._C",
            sources + _sources("csrc/cuda/*.cu"),
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-DVATT_PYTHON_MODULE", version]},
            extra_link_args=["-fopenmp"],
        )
    return CppExtension("vatt._C", sources, extra_compile_args={"cxx": cxx_flags}, extra_link_args=["-fopenmp"])


setup(
    name="vatt",
    version="0.1.0",
    description="VATT: self-supervised Video-Audio-Text Transformers from raw signals, in PyTorch",
    packages=find_packages(include=["vatt*"]),
    python_requires=">=3.10",
    install_requires=["numpy", "pyyaml", "tensorboard", "av", "simplejpeg", "safetensors", "google-crc32c", "tqdm",
                      "starlette", "uvicorn", "python-multipart"],
    extras_require={"test": ["pytest", "hypothesis", "scikit-learn", "selenium", "httpx2", "ruff"],
                    "xla": ["torch_xla"], "ann": ["faiss-cpu"]},
    package_data={"vatt.ops": ["schemas.def"], "vatt.search": ["static/*"]},
    ext_modules=[_ops_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    # plugins declare their own entry points (vatt.<kind> groups) in their packages; vatt itself needs none
    entry_points={},
    zip_safe=False,
)
