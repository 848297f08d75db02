// Teacher-cache epoch files (soft_label_store.hpp: header, one record per step, index, end mark)
// through EpochReader: opened, then every step read and decoded. Byte 0 of the input picks the
// codec the reader expects (fp32, fp16 or top-k, 10 classes), the rest is the file.
// Seeds: epoch files written by EpochWriter with each codec.
#include "fuzz_support.hpp"
#include "tensor_checks.hpp"
#include "teacher_cache/soft_label_store.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <iterator>

namespace ssld::fuzz {
namespace {

constexpr uint64_t kKeyHash = 0x5eed5eed12345678ULL;

const host::SoftLabelCodec& codec(uint8_t choice) {
  static const host::SoftLabelCodec fp32("fp32", 10, 0), fp16("fp16", 10, 0), topk("topk", 10, 3);
  switch (choice % 3) {
    case 0: return fp32;
    case 1: return fp16;
    default: return topk;
  }
}

}  // namespace

void write_seeds(const std::filesystem::path& folder) {
  for (uint8_t choice = 0; choice < 3; ++choice) {
    const auto path = scratch() / "seed.bin";
    {
      host::EpochWriter writer(path, kKeyHash, codec(choice), 3);
      for (int64_t step = 0; step < 3; ++step) {
        const int64_t n = step + 1;
        const at::Tensor logits = at::sin(at::arange(n * 10, at::kFloat) + static_cast<double>(step)).view({n, 10});
        writer.append(at::arange(n, at::kLong) + 100 * step, codec(choice).encode(logits));
      }
      writer.finish();
    }
    std::ifstream in(path, std::ios::binary);
    std::string bytes(1, static_cast<char>(choice));
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    write_text(folder / (codec(choice).name() + ".bin"), bytes);
  }
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fuzz = ssld::fuzz;
  if (size < 1) return 0;
  const auto path = fuzz::input_file("epoch_00000.bin", data + 1, size - 1);
  fuzz::refuse_or_read([&] {
    const ssld::host::EpochReader reader(path, fuzz::kKeyHash, fuzz::codec(data[0]));
    for (int64_t step = 0; step < std::min<int64_t>(reader.steps(), 64); ++step) {
      const ssld::host::SoftLabelRecord record = reader.read(step);
      fuzz::touch(record.ids);
      fuzz::touch(record.logits);
    }
  });
  return 0;
}
