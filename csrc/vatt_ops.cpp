// The vatt:: library (its schemas) and the (empty) Python module that loads it.
//
// The schemas are written once, in vatt/ops/schemas.def, which this file #includes and vatt/ops/library.py reads
// as text to define the same schemas from Python when no compiled library can be loaded. Kernels live beside
// this file: cpu/<op>.cpp registers the CPU kernel of each op, cuda/<op>.cu the CUDA one. Autograd, fake (meta)
// kernels and the pure-PyTorch composites are registered from Python (vatt/ops/registration.py).
#include "vatt_ops.h"

#include <torch/library.h>

#ifdef VATT_PYTHON_MODULE
#include <Python.h>
#endif

#ifndef VATT_TORCH_VERSION
#define VATT_TORCH_VERSION "unknown"
#endif

namespace vatt {

// Kept in the binary as plain text so that Python can read which torch the library was built for *before*
// loading it: loading a library built against another torch can crash instead of failing cleanly.
extern "C" __attribute__((used)) const char vatt_build_info[] = "VATT_BUILD_INFO torch=" VATT_TORCH_VERSION ";";

const char* built_for_torch() { return VATT_TORCH_VERSION; }

TORCH_LIBRARY(vatt, m) {
  // A path relative to this file, so that setup.py, CMake and the just-in-time build need no include folder.
  for (const char* schema : {
#include "../vatt/ops/schemas.def"
       }) {
    m.def(schema);
  }
}

}  // namespace vatt

#ifdef VATT_PYTHON_MODULE
// `import vatt._C` only has to run the static registrations above; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
#endif
