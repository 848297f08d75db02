// The IDX dataset plugin (plugins/datasets/idx, MNIST's format, raw or gzip-compressed), loaded
// through the host's plugin loader and built by the component factory as `ssld` builds it, then
// every sample read. The input holds both files:
//   byte 0      bit 0 set: a labels file follows
//   bytes 1-4   the length of the images file (little-endian, cut to what follows)
//   then        the images file, then the labels file
// Seeds: small IDX image and label files, raw and gzip-compressed.
#include "components/component_factory.hpp"
#include "config/config_loader.hpp"
#include "fuzz_support.hpp"
#include "plugin/plugin_loader.hpp"
#include "tensor_checks.hpp"

#include <ssld/data.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <vector>

namespace ssld::fuzz {
namespace {

std::vector<uint8_t> idx_file(const std::vector<uint32_t>& shape, uint8_t fill) {
  std::vector<uint8_t> bytes = {0, 0, 0x08, static_cast<uint8_t>(shape.size())};
  size_t elements = 1;
  for (uint32_t dim : shape) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(dim >> shift));
    elements *= dim;
  }
  for (size_t i = 0; i < elements; ++i) bytes.push_back(static_cast<uint8_t>(fill + i * 7));
  return bytes;
}

std::vector<uint8_t> gzipped(const std::vector<uint8_t>& bytes) {
  const auto path = scratch() / "seed.gz";
  gzFile file = gzopen(path.c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> input(const std::vector<uint8_t>& images, const std::vector<uint8_t>* labels) {
  std::vector<uint8_t> out = {static_cast<uint8_t>(labels ? 1 : 0)};
  const auto length = static_cast<uint32_t>(images.size());
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<uint8_t>(length >> shift));
  out.insert(out.end(), images.begin(), images.end());
  if (labels) out.insert(out.end(), labels->begin(), labels->end());
  return out;
}

struct Host {
  host::ComponentRegistry registry;
  host::PluginLoader loader{registry};
  Host() { loader.load(SSLD_IDX_PLUGIN); }
};

Host& plugin_host() {
  static Host host;
  return host;
}

}  // namespace

void write_seeds(const std::filesystem::path& folder) {
  const auto images = idx_file({3, 4, 5}, 1);
  const auto labels = idx_file({3}, 0);
  const auto one = idx_file({1, 28, 28}, 9);
  const auto seed = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    write_bytes(folder / name, bytes.data(), bytes.size());
  };
  seed("images_labels", input(images, &labels));
  seed("images_only", input(one, nullptr));
  const auto gz_images = gzipped(images), gz_labels = gzipped(labels);
  seed("gzip_images_labels", input(gz_images, &gz_labels));
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fuzz = ssld::fuzz;
  fuzz::Host& host = fuzz::plugin_host();
  if (size < 5) return 0;
  const bool has_labels = data[0] & 1;
  uint32_t images_length = 0;
  std::memcpy(&images_length, data + 1, 4);
  const size_t rest = size - 5;
  const size_t images_size = std::min<size_t>(images_length, rest);
  const auto images = fuzz::input_file("images.idx", data + 5, images_size);
  const auto labels = fuzz::input_file("labels.idx", data + 5 + images_size, rest - images_size);
  std::string table = "[component]\ntype = \"idx\"\nimages = \"" + images.string() + "\"\n";
  if (has_labels) table += "labels = \"" + labels.string() + "\"\n";
  fuzz::write_text(fuzz::scratch() / "config.toml", table);
  fuzz::refuse_or_read([&] {
    const ssld::host::TomlValue root = ssld::host::load_config(fuzz::scratch() / "config.toml");
    const ssld::host::ComponentFactory factory(host.registry, c10::Device(c10::kCPU), 0);
    const auto made = factory.create(ssld::Kind::Dataset, root.at("component"), "component");
    const auto& dataset = static_cast<const ssld::Dataset&>(*made);
    const int64_t samples = dataset.size();
    (void)dataset.num_classes();
    (void)dataset.identity();
    for (int64_t index : {int64_t{0}, samples / 2, samples - 1}) {
      if (index < 0 || index >= samples) continue;
      const ssld::Sample sample = dataset.get(index);
      fuzz::touch(sample.image);
      (void)dataset.label_of(index);
    }
  });
  return 0;
}
