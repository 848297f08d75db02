// idx: the IDX files of MNIST and Fashion-MNIST (gzip-compressed or raw; zlib reads both), held
// in memory as one uint8 tensor. Samples come out decoded (HWC, one channel); their id is the
// index in the file, so it is stable across runs.
#include <ssld/data.hpp>
#include <ssld/plugin.hpp>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>

namespace {

// An IDX file larger than this is a damaged header or not an IDX file (ImageNet-size sets
// are image folders, not IDX).
constexpr uint64_t kMaxIdxBytes = uint64_t{16} << 30;

uint32_t big_endian(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

// Reads the header first and then exactly the bytes it describes (plus one, to notice extra
// bytes), so neither /dev/zero nor a gzip bomb nor a lying header grows memory without bound.
std::vector<uint8_t> read_maybe_gzipped(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw ssld::Error("IDX file '" + path + "' does not exist or is not a regular file");
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw ssld::Error("cannot open IDX file '" + path + "'");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  std::vector<uint8_t> bytes;
  // Appends up to `count` bytes as they arrive: memory follows the data, not the header's claim.
  auto append = [&](uint64_t count) {
    std::array<uint8_t, 1 << 16> chunk;
    while (count > 0) {
      const int got = gzread(file, chunk.data(), static_cast<unsigned>(std::min<uint64_t>(count, chunk.size())));
      if (got < 0) {
        int code = 0;
        throw ssld::Error("'" + path + "' is corrupt: " + gzerror(file, &code));
      }
      if (got == 0) return;
      bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
      count -= static_cast<uint64_t>(got);
    }
  };
  append(4);
  if (bytes.size() != 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
    throw ssld::Error("'" + path + "' is not an IDX file of unsigned bytes (bad magic number)");
  const uint64_t header = 4 + 4 * uint64_t{bytes[3]};
  append(header - 4);
  if (bytes.size() != header) throw ssld::Error("'" + path + "' is truncated in its header");
  uint64_t elements = 1;
  bool overflow = false;  // sticky: a later 0 must not hide it
  for (size_t d = 0; d < bytes[3]; ++d)
    overflow |= __builtin_mul_overflow(elements, uint64_t{big_endian(bytes.data() + 4 + 4 * d)}, &elements);
  uint64_t total = 0;
  if (overflow || __builtin_add_overflow(header, elements, &total) || total > kMaxIdxBytes)
    throw ssld::Error("'" + path + "' has a header describing more than " + std::to_string(kMaxIdxBytes >> 30) +
                      " GiB of data: a damaged file, or not IDX");
  append(total + 1 - header);  // one more than described: idx_shape() reports extra bytes
  return bytes;
}

// Parses an IDX header: magic 0x00 0x00 0x08 (unsigned byte) and the number of dimensions.
std::vector<int64_t> idx_shape(const std::vector<uint8_t>& bytes, const std::string& path, int expected_dims) {
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
    throw ssld::Error("'" + path + "' is not an IDX file of unsigned bytes (bad magic number)");
  const int dims = bytes[3];
  if (dims != expected_dims)
    throw ssld::Error("'" + path + "' has " + std::to_string(dims) + " dimensions, expected " + std::to_string(expected_dims));
  if (bytes.size() < 4 + 4 * static_cast<size_t>(dims)) throw ssld::Error("'" + path + "' is truncated in its header");
  std::vector<int64_t> shape;
  int64_t elements = 1;
  for (int d = 0; d < dims; ++d) {
    shape.push_back(big_endian(bytes.data() + 4 + 4 * d));
    if (__builtin_mul_overflow(elements, shape.back(), &elements))  // found by the idx fuzz target (UBSan)
      throw ssld::Error("'" + path + "' has a header whose sizes overflow: a damaged file, or not IDX");
  }
  if (bytes.size() != 4 + 4 * static_cast<uint64_t>(dims) + static_cast<uint64_t>(elements))
    throw ssld::Error("'" + path + "' holds " + std::to_string(bytes.size()) + " bytes, but its header describes " +
                      std::to_string(4 + 4 * dims + elements));
  return shape;
}

class IdxDataset : public ssld::Dataset {
 public:
  IdxDataset(const ssld::Options& options, const ssld::Context& context)
      : images_path_(options.get_string("images")), class_names_(options.get_string_list("class_names")) {
    const std::vector<uint8_t> images = read_maybe_gzipped(images_path_);
    const auto shape = idx_shape(images, images_path_, 3);
    // An empty set or images of no pixels: nothing to train on (and no pixel buffer to copy
    // into; found by the idx fuzz target, UBSan).
    if (shape[0] == 0 || shape[1] == 0 || shape[2] == 0)
      throw ssld::Error("'" + images_path_ + "' holds no images (" + std::to_string(shape[0]) + " of " +
                        std::to_string(shape[1]) + "x" + std::to_string(shape[2]) + " pixels)");
    images_ = at::empty({shape[0], shape[1], shape[2], 1}, at::kByte);
    std::memcpy(images_.data_ptr<uint8_t>(), images.data() + 16, images.size() - 16);
    if (options.has("labels")) {
      const std::string labels_path = options.get_string("labels");
      const std::vector<uint8_t> labels = read_maybe_gzipped(labels_path);
      const auto label_shape = idx_shape(labels, labels_path, 1);
      if (label_shape[0] != shape[0])
        throw ssld::option_error(options, "labels", "'" + labels_path + "' has " + std::to_string(label_shape[0]) +
                                                        " labels for " + std::to_string(shape[0]) + " images");
      labels_.assign(labels.begin() + 8, labels.end());
      int max_label = 0;
      for (uint8_t label : labels_) max_label = std::max<int>(max_label, label);
      num_classes_ = max_label + 1;
      if (!class_names_.empty() && static_cast<int64_t>(class_names_.size()) < num_classes_)
        throw ssld::option_error(options, "class_names", "names " + std::to_string(class_names_.size()) +
                                                             " classes, the labels use " + std::to_string(num_classes_));
      if (!class_names_.empty()) num_classes_ = static_cast<int64_t>(class_names_.size());
    }
    context.log(ssld::LogLevel::Debug, "read " + std::to_string(shape[0]) + " images of " + std::to_string(shape[1]) +
                                           "x" + std::to_string(shape[2]) + " from " + images_path_);
  }

  int64_t size() const override { return images_.size(0); }
  ssld::Sample get(int64_t index) const override {
    ssld::Sample sample;
    sample.image = images_[index];  // a view: the loader copies it into the batch
    sample.label = label_of(index);
    sample.id = static_cast<uint64_t>(index);
    sample.origin = images_path_ + "#" + std::to_string(index);
    return sample;
  }
  int64_t label_of(int64_t index) const override { return labels_.empty() ? -1 : labels_[index]; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<std::string> class_names() const override { return class_names_; }
  std::string identity() const override { return "idx:" + images_path_ + ":" + std::to_string(size()); }

 private:
  std::string images_path_;
  std::vector<std::string> class_names_;
  at::Tensor images_;  // [N, H, W, 1] uint8
  std::vector<uint8_t> labels_;
  int64_t num_classes_ = 0;
};

}  // namespace

SSLD_PLUGIN("idx_dataset", "0.1.0", registry) {
  ssld::add_component<ssld::Dataset, IdxDataset>(
      registry, "idx", "MNIST / Fashion-MNIST IDX files (gzip or raw), decoded in memory; ids are file indices.",
      ssld::Schema()
          .require(ssld::OptionType::Path, "images", "IDX file of images (e.g. train-images-idx3-ubyte.gz)")
          .optional(ssld::OptionType::Path, "labels", "IDX file of labels; without it the samples are unlabeled")
          .add_string_list("class_names", {}, "names of the classes, in label order"));
}
