// torch.save's format (a zip archive: data.pkl, the pickle, and one record per storage) through
// read_torch_file: the zip directory, the pickle interpreter, storages, offsets and strides.
// Seeds: what write_torch_file writes; scripts/fuzz.sh adds real torch.save files (state dicts,
// checkpoints with optimizers, DataParallel prefixes, the legacy format) from python3-torch.
#include "fuzz_support.hpp"
#include "tensor_checks.hpp"
#include "weights/torch_file.hpp"

namespace ssld::fuzz {

void write_seeds(const std::filesystem::path& folder) {
  const NamedTensors tensors = sample_tensors();
  host::write_torch_file((folder / "all_dtypes.pth").string(), tensors);
  host::write_torch_file((folder / "one.pth").string(), {tensors.front()});
  host::write_torch_file((folder / "empty_dict.pth").string(), {});
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = ssld::fuzz::input_file("input.pth", data, size);
  ssld::fuzz::refuse_or_read([&] {
    ssld::fuzz::touch(ssld::host::read_torch_file(path.string()));
  });
  return 0;
}
