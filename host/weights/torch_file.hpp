// Weights in PyTorch's own file format: what `torch.save` writes (a zip archive holding a pickle
// and one record per storage, PyTorch >= 1.6). Reading does not execute the pickle: a small
// interpreter understands the opcodes torch.save emits, rebuilds tensors from their storages,
// and turns any other Python object into an opaque value, so a training checkpoint with an
// optimizer, an argparse namespace or numpy scalars still yields its state dict.
#pragma once

#include <ssld/model.hpp>

#include <string>

namespace ssld::host {

// The state dict in `path`: the top-level dict when its values are tensors (a dict or the
// OrderedDict `model.state_dict()` returns), else the dict of tensors under the first of the keys
// "state_dict", "model", "model_state_dict", "module". A "module." prefix on every name
// (torch.nn.DataParallel) is removed. Throws ssld::Error saying what was found instead.
NamedTensors read_torch_file(const std::string& path);

// Writes the tensors as torch.save writes a state dict: an OrderedDict of contiguous CPU tensors
// that `torch.load` returns ready for `model.load_state_dict`, including under
// `weights_only=True` (PyTorch's default since 2.6: the pickle names only collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 and storage classes). Atomic, as every weights file ssld writes.
// Files of earlier ssld versions (libtorch's tagged pickle) still read.
void write_torch_file(const std::string& path, const NamedTensors& tensors);

// True when the file starts like a zip archive (torch.save), false for anything else.
bool looks_like_torch_file(const std::string& path);

}  // namespace ssld::host
