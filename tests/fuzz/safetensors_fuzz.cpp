// The safetensors format through read_safetensors: the 8-byte header length, the JSON header
// (dtypes, shapes, byte ranges, __metadata__) and the tensors' bytes.
// Seeds: what write_safetensors writes, with and without metadata.
#include "fuzz_support.hpp"
#include "tensor_checks.hpp"
#include "weights/safetensors.hpp"

namespace ssld::fuzz {

void write_seeds(const std::filesystem::path& folder) {
  const NamedTensors tensors = sample_tensors();
  host::write_safetensors((folder / "all_dtypes.safetensors").string(), tensors);
  host::write_safetensors((folder / "metadata.safetensors").string(), {tensors[0], tensors[3]},
                          {{"format", "pt"}, {"note", "seed"}});
  host::write_safetensors((folder / "empty.safetensors").string(), {});
  // The same without ssld's digests, as Python writes them: mutations then reach the parsing.
  for (const char* name : {"all_dtypes", "metadata"}) {
    const auto plain = folder / (std::string(name) + "_no_checksums.safetensors");
    std::filesystem::copy_file(folder / (std::string(name) + ".safetensors"), plain);
    strip_ssld_checksums(plain);
  }
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = ssld::fuzz::input_file("input.safetensors", data, size);
  ssld::fuzz::refuse_or_read([&] {
    const ssld::host::TensorFile file = ssld::host::read_safetensors(path.string());
    uint64_t sum = ssld::fuzz::touch(file.tensors);
    for (const auto& [key, value] : file.metadata) sum += key.size() + value.size();
    (void)sum;
  });
  return 0;
}
