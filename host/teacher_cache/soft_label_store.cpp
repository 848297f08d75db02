#include "teacher_cache/soft_label_store.hpp"

#include "core/atomic_file.hpp"
#include "core/json_differences.hpp"
#include "core/tensor_digest.hpp"

#include <ssld/error.hpp>
#include <ssld/rng.hpp>

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <unistd.h>

namespace ssld::host {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'S', 'S', 'L', 'D', 'S', 'O', 'F', 'T'};
constexpr char kEndMagic[8] = {'S', 'S', 'L', 'D', 'E', 'N', 'D', '\0'};
constexpr uint32_t kVersion = 1;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t format;
  int64_t classes;
  int64_t top_k;
  int64_t steps;
  uint64_t key_hash;
};
static_assert(sizeof(Header) == 48, "epoch file header layout");

std::string hex(uint64_t value) { return digest_hex(value); }

// Checksum of a record's ids and payload: catches a torn or bit-flipped record.
uint64_t record_checksum(const at::Tensor& ids, const uint8_t* payload, size_t payload_bytes) {
  const at::Tensor bytes = at::from_blob(const_cast<uint8_t*>(payload), {static_cast<int64_t>(payload_bytes)}, at::kByte);
  return tensor_digest(ids) ^ (tensor_digest(bytes) * 31);
}

void write_all(std::FILE* file, const void* data, size_t size, const fs::path& path) {
  if (size > 0 && std::fwrite(data, 1, size, file) != size)
    throw Error("teacher cache: cannot write '" + path.string() + "' (disk full?)");
}

bool read_all(std::FILE* file, void* data, size_t size) { return size == 0 || std::fread(data, 1, size, file) == size; }

}  // namespace

// --- SoftLabelCodec ---------------------------------------------------------------------------

SoftLabelCodec::SoftLabelCodec(const std::string& format, int64_t classes, int64_t top_k)
    : classes_(classes), top_k_(0) {
  if (format == "fp32") {
    format_ = Format::Fp32;
  } else if (format == "fp16") {
    format_ = Format::Fp16;
  } else if (format == "topk") {
    format_ = Format::TopK;
    if (top_k < 1 || top_k >= classes)
      throw Error("teacher cache: top_k = " + std::to_string(top_k) + " must be between 1 and the number of classes - 1 (" +
                  std::to_string(classes - 1) + ")");
    top_k_ = top_k;
  } else {
    throw Error("teacher cache: unknown format '" + format + "' (fp32, fp16 or topk)");
  }
}

std::string SoftLabelCodec::name() const {
  return format_ == Format::Fp32 ? "fp32" : format_ == Format::Fp16 ? "fp16" : "topk";
}

int64_t SoftLabelCodec::bytes_per_sample() const {
  switch (format_) {
    case Format::Fp32: return 4 * classes_;
    case Format::Fp16: return 2 * classes_;
    case Format::TopK: return 6 * top_k_;  // fp16 probability + int32 class index
  }
  return 0;
}

std::vector<uint8_t> SoftLabelCodec::encode(const at::Tensor& logits) const {
  const at::Tensor values = logits.detach().to(at::kCPU);
  const int64_t n = values.size(0);
  std::vector<uint8_t> out(static_cast<size_t>(n * bytes_per_sample()));
  auto copy = [&](const at::Tensor& tensor, size_t offset) {
    const at::Tensor contiguous = tensor.contiguous();
    std::memcpy(out.data() + offset, contiguous.data_ptr(), contiguous.numel() * contiguous.element_size());
  };
  if (format_ == Format::Fp32) {
    copy(values.to(at::kFloat), 0);
  } else if (format_ == Format::Fp16) {
    copy(values.to(at::kHalf), 0);
  } else {
    const auto [probabilities, indices] = values.to(at::kFloat).softmax(1).topk(top_k_, 1);
    copy(probabilities.to(at::kHalf), 0);
    copy(indices.to(at::kInt), static_cast<size_t>(n * top_k_ * 2));
  }
  return out;
}

at::Tensor SoftLabelCodec::decode(const uint8_t* bytes, int64_t n) const {
  auto view = [&](size_t offset, at::IntArrayRef shape, at::ScalarType type) {
    return at::from_blob(const_cast<uint8_t*>(bytes) + offset, shape, type);
  };
  if (format_ == Format::Fp32) return view(0, {n, classes_}, at::kFloat).clone();
  if (format_ == Format::Fp16) return view(0, {n, classes_}, at::kHalf).to(at::kFloat);
  const at::Tensor top = view(0, {n, top_k_}, at::kHalf).to(at::kFloat);
  const at::Tensor indices = view(static_cast<size_t>(n * top_k_ * 2), {n, top_k_}, at::kInt).to(at::kLong);
  const at::Tensor rest = (1.0 - top.sum(1, true)).clamp_min(0.0) / static_cast<double>(classes_ - top_k_);
  const at::Tensor probabilities = rest.expand({n, classes_}).clone().scatter_(1, indices, top);
  return probabilities.clamp_min(1e-8).log();
}

// --- EpochReader ------------------------------------------------------------------------------

EpochReader::EpochReader(const fs::path& path, uint64_t key_hash, const SoftLabelCodec& codec)
    : path_(path), codec_(codec) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw Error("teacher cache: cannot open '" + path.string() + "'");
  const std::string where = "teacher cache: '" + path.string() + "' ";
  Header header{};
  if (!read_all(file_, &header, sizeof(header)) || std::memcmp(header.magic, kMagic, 8) != 0)
    throw Error(where + "is not a soft-label epoch file");
  if (header.version != kVersion)
    throw Error(where + "has format version " + std::to_string(header.version) + "; this ssld reads " +
                std::to_string(kVersion) + ". Delete the store folder to refill it.");
  if (header.key_hash != key_hash || header.format != static_cast<uint32_t>(codec.format()) ||
      header.classes != codec.classes() || header.top_k != codec.top_k())
    throw Error(where + "was written for another key (" + hex(header.key_hash) + ", not " + hex(key_hash) +
                "): it does not belong in this folder");
  uint64_t index_offset = 0;
  char end[8];
  if (fseeko(file_, -16, SEEK_END) != 0 || !read_all(file_, &index_offset, 8) || !read_all(file_, end, 8) ||
      std::memcmp(end, kEndMagic, 8) != 0)
    throw Error(where + "is truncated (no index at its end): delete it to have it written again");
  file_size_ = static_cast<uint64_t>(ftello(file_));
  // The index of `steps` offsets sits right before the 16-byte trailer; nothing is sized from
  // the header before it is checked against the bytes that are there.
  const uint64_t index_room = file_size_ >= sizeof(Header) + 16 ? file_size_ - sizeof(Header) - 16 : 0;
  if (header.steps < 0 || static_cast<uint64_t>(header.steps) > index_room / 8 || index_offset < sizeof(Header) ||
      index_offset + static_cast<uint64_t>(header.steps) * 8 != file_size_ - 16)
    throw Error(where + "has a damaged header or index (" + std::to_string(header.steps) + " steps, index at byte " +
                std::to_string(index_offset) + " of " + std::to_string(file_size_) +
                "): delete it to have it written again");
  offsets_.resize(static_cast<size_t>(header.steps));
  if (fseeko(file_, static_cast<off_t>(index_offset), SEEK_SET) != 0 ||
      !read_all(file_, offsets_.data(), offsets_.size() * sizeof(uint64_t)))
    throw Error(where + "has a damaged index: delete it to have it written again");
}

EpochReader::~EpochReader() {
  if (file_) std::fclose(file_);
}

SoftLabelRecord EpochReader::read(int64_t step) const {
  const std::string where = "teacher cache: '" + path_.string() + "' step " + std::to_string(step) + " ";
  if (step < 0 || step >= steps()) throw Error(where + "is beyond the epoch's " + std::to_string(steps()) + " steps");
  int64_t stored_step = -1, n = -1;
  if (fseeko(file_, static_cast<off_t>(offsets_[static_cast<size_t>(step)]), SEEK_SET) != 0 ||
      !read_all(file_, &stored_step, 8) || !read_all(file_, &n, 8) || stored_step != step || n < 0 ||
      static_cast<uint64_t>(n) > file_size_ / static_cast<uint64_t>(8 + codec_.bytes_per_sample()))
    throw Error(where + "is damaged (record header): delete the file to have it written again");
  SoftLabelRecord record;
  record.ids = at::empty({n}, at::kLong);
  std::vector<uint8_t> payload(static_cast<size_t>(n * codec_.bytes_per_sample()));
  uint64_t checksum = 0;
  if (!read_all(file_, record.ids.data_ptr(), static_cast<size_t>(n) * 8) ||
      !read_all(file_, payload.data(), payload.size()) || !read_all(file_, &checksum, 8) ||
      checksum != record_checksum(record.ids, payload.data(), payload.size()))
    throw Error(where + "is damaged (checksum mismatch): delete the file to have it written again");
  record.logits = codec_.decode(payload.data(), n);
  return record;
}

// --- EpochWriter ------------------------------------------------------------------------------

EpochWriter::EpochWriter(const fs::path& path, uint64_t key_hash, const SoftLabelCodec& codec, int64_t steps)
    : path_(path), key_hash_(key_hash), codec_(codec), steps_(steps) {
  partial_ = path;
  partial_ += "." + std::to_string(::getpid()) + ".partial";
  file_ = std::fopen(partial_.c_str(), "wb");
  if (!file_) throw Error("teacher cache: cannot create '" + partial_.string() + "'");
  Header header{};
  std::memcpy(header.magic, kMagic, 8);
  header.version = kVersion;
  header.format = static_cast<uint32_t>(codec.format());
  header.classes = codec.classes();
  header.top_k = codec.top_k();
  header.steps = steps;
  header.key_hash = key_hash;
  write_all(file_, &header, sizeof(header), partial_);
}

EpochWriter::~EpochWriter() {
  if (!file_) return;
  std::fclose(file_);
  std::error_code ignored;
  fs::remove(partial_, ignored);
}

void EpochWriter::append(const at::Tensor& ids, const std::vector<uint8_t>& encoded) {
  const at::Tensor cpu_ids = ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = cpu_ids.numel();
  if (static_cast<int64_t>(encoded.size()) != n * codec_.bytes_per_sample())
    throw std::logic_error("EpochWriter::append: payload size does not match the batch");
  if (next_step() >= steps_) throw std::logic_error("EpochWriter::append: more steps than the epoch has");
  offsets_.push_back(static_cast<uint64_t>(ftello(file_)));
  const int64_t step = next_step() - 1;
  write_all(file_, &step, 8, partial_);
  write_all(file_, &n, 8, partial_);
  write_all(file_, cpu_ids.data_ptr(), static_cast<size_t>(n) * 8, partial_);
  write_all(file_, encoded.data(), encoded.size(), partial_);
  const uint64_t checksum = record_checksum(cpu_ids, encoded.data(), encoded.size());
  write_all(file_, &checksum, 8, partial_);
}

void EpochWriter::finish() {
  if (next_step() != steps_)
    throw std::logic_error("EpochWriter::finish: " + std::to_string(next_step()) + " of " + std::to_string(steps_) +
                           " steps written");
  const uint64_t index_offset = static_cast<uint64_t>(ftello(file_));
  write_all(file_, offsets_.data(), offsets_.size() * sizeof(uint64_t), partial_);
  write_all(file_, &index_offset, 8, partial_);
  write_all(file_, kEndMagic, 8, partial_);
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  std::fclose(file_);
  file_ = nullptr;
  std::error_code error;
  if (flushed) fs::rename(partial_, path_, error);
  if (!flushed || error) {
    fs::remove(partial_, error);
    throw Error("teacher cache: cannot write '" + path_.string() + "' (disk full?)");
  }
}

// --- SoftLabelStore ---------------------------------------------------------------------------

SoftLabelStore::SoftLabelStore(fs::path root, nlohmann::json key)
    : root_(std::move(root)), key_(std::move(key)), key_hash_(Rng::purpose_of(key_.dump())) {
  folder_ = root_ / hex(key_hash_);
  const fs::path key_file = folder_ / "key.json";
  if (!fs::exists(key_file)) return;
  std::ifstream in(key_file);
  const nlohmann::json stored = nlohmann::json::parse(in, nullptr, false);
  if (stored != key_) {
    std::string differences;
    for (const auto& line : json_differences(stored, key_)) differences += "\n  " + line;
    throw Error("teacher cache: '" + key_file.string() + "' holds another key than its folder name says:" +
                differences + "\nDelete " + folder_.string() + " to refill it.");
  }
}

fs::path SoftLabelStore::epoch_path(int64_t epoch) const {
  char name[32];
  std::snprintf(name, sizeof(name), "epoch_%05lld.bin", static_cast<long long>(epoch));
  return folder_ / name;
}

bool SoftLabelStore::has_epoch(int64_t epoch) const { return fs::exists(epoch_path(epoch)); }

std::vector<int64_t> SoftLabelStore::epochs() const {
  std::vector<int64_t> found;
  std::error_code ignored;
  if (!fs::is_directory(folder_, ignored)) return found;
  for (const auto& entry : fs::directory_iterator(folder_)) {
    const std::string name = entry.path().filename().string();
    const std::string digits = name.size() == 15 ? name.substr(6, 5) : "";
    if (name.rfind("epoch_", 0) == 0 && name.substr(11) == ".bin" && !digits.empty() &&
        digits.find_first_not_of("0123456789") == std::string::npos)
      found.push_back(std::stoll(digits));  // anything else in the folder is not an epoch of this store
  }
  std::sort(found.begin(), found.end());
  return found;
}

void SoftLabelStore::write_key() const {
  fs::create_directories(folder_);
  if (!fs::exists(folder_ / "key.json")) write_file_atomically((folder_ / "key.json").string(), key_.dump(2) + "\n");
}

std::optional<nlohmann::json> SoftLabelStore::teacher_accuracy(const std::string& val_key) const {
  std::ifstream in(folder_ / "teacher_accuracy.json");
  if (!in) return std::nullopt;
  const nlohmann::json stored = nlohmann::json::parse(in, nullptr, false);
  if (!stored.is_object() || !stored.contains(val_key)) return std::nullopt;
  return stored.at(val_key);
}

void SoftLabelStore::save_teacher_accuracy(const std::string& val_key, const nlohmann::json& accuracy) const {
  write_key();
  // Runs sharing the store may each add their validation set's entry at once: read-modify-write
  // under a lock, so no entry is lost.
  const FileLock lock(folder_ / "teacher_accuracy.json.lock");
  nlohmann::json stored = nlohmann::json::object();
  if (std::ifstream in(folder_ / "teacher_accuracy.json"); in) {
    stored = nlohmann::json::parse(in, nullptr, false);
    if (!stored.is_object()) stored = nlohmann::json::object();
  }
  stored[val_key] = accuracy;
  write_file_atomically((folder_ / "teacher_accuracy.json").string(), stored.dump(2) + "\n");
}

std::vector<std::string> SoftLabelStore::other_stores() const {
  std::vector<std::string> lines;
  std::error_code ignored;
  if (!fs::is_directory(root_, ignored)) return lines;
  for (const auto& entry : fs::directory_iterator(root_)) {
    if (entry.path() == folder_) continue;
    std::ifstream in(entry.path() / "key.json");
    if (!in) continue;
    const nlohmann::json other = nlohmann::json::parse(in, nullptr, false);
    std::string line = entry.path().filename().string() + ":";
    for (const auto& difference : json_differences(other, key_)) line += " " + difference + ";";
    lines.push_back(line);
  }
  return lines;
}

}  // namespace ssld::host
