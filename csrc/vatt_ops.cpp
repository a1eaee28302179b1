// Schemas of the vatt ops and the (empty) Python module that loads them.
//
// Kernels live beside this file: cpu/<op>.cpp registers the CPU kernel of each op, cuda/<op>.cu the CUDA
// one. Autograd, fake (meta) kernels and the pure-PyTorch composites are registered from Python
// (vatt/ops/registration.py), which also defines these same schemas when no compiled library can be loaded.
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
  m.def("patch_embed(Tensor x, int[] patch_size, Tensor weight, Tensor? bias, Tensor? pos, Tensor? keep) -> Tensor");
  m.def("patch_embed_backward(Tensor grad, Tensor x, int[] patch_size, Tensor weight, Tensor? keep, "
        "bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("drop_tokens(Tensor tokens, Tensor keep) -> Tensor");
  m.def("drop_tokens_backward(Tensor grad, Tensor keep, SymInt num_tokens) -> Tensor");
  m.def("contrastive_rows(Tensor v_local, Tensor t_local, Tensor v_all, Tensor t_all, Tensor mask_local, "
        "Tensor mask_all, float temperature, int tile_size) -> (Tensor, Tensor)");
  m.def("contrastive_rows_backward(Tensor grad_loss, Tensor row_lse, Tensor v_local, Tensor t_local, "
        "Tensor v_all, Tensor t_all, Tensor mask_local, Tensor mask_all, float temperature, int tile_size) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
}

}  // namespace vatt

#ifdef VATT_PYTHON_MODULE
// `import vatt._C` only has to run the static registrations above; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
#endif
