// The teacher cache on disk: soft labels (what a frozen teacher predicted for every batch of an
// epoch) written once and read back by every later run that would compute the same thing.
//
// A store root holds one folder per key, the key being everything the teacher's outputs depend
// on (teacher identity, its table, the training data pipeline, seed, device, storage format):
//   <root>/<key hash>/key.json              the key, spelled out (checked on open)
//   <root>/<key hash>/epoch_00003.bin       one file per complete epoch, written atomically
//   <root>/<key hash>/teacher_accuracy.json the teacher's validation accuracy, per val pipeline
// An epoch file is a header, one record per step (step, batch size, sample ids, encoded
// soft labels, a checksum of ids and payload) and an index of record offsets: a step is read
// with one seek, so memory does not grow with the epoch.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ssld::host {

// How soft labels are stored: full logits (fp32: bit-identical to the teacher; fp16: half the
// size), or, as FKD does, the top-k probabilities with the rest of the mass spread uniformly.
class SoftLabelCodec {
 public:
  enum class Format { Fp32, Fp16, TopK };
  // Throws ssld::Error for an unknown format or a top_k outside [1, classes).
  SoftLabelCodec(const std::string& format, int64_t classes, int64_t top_k);

  int64_t bytes_per_sample() const;
  // logits [N, classes] (any float type, any device) -> N * bytes_per_sample() bytes.
  std::vector<uint8_t> encode(const at::Tensor& logits) const;
  // Back to float logits [n, classes] on the CPU. For top-k: log-probabilities, whose softmax
  // is the stored top-k probabilities plus the uniform rest (floored at 1e-8).
  at::Tensor decode(const uint8_t* bytes, int64_t n) const;

  Format format() const { return format_; }
  int64_t classes() const { return classes_; }
  int64_t top_k() const { return top_k_; }
  std::string name() const;  // "fp32", "fp16", "topk"

 private:
  Format format_;
  int64_t classes_;
  int64_t top_k_;
};

// One step's record as stored.
struct SoftLabelRecord {
  at::Tensor ids;     // int64 [n], Sample::id of the batch's samples, in batch order
  at::Tensor logits;  // float [n, classes], decoded, on the CPU
};

// A complete epoch file, read a step at a time. Throws ssld::Error naming the file for a
// truncated or corrupt file, or one written for another key.
class EpochReader {
 public:
  EpochReader(const std::filesystem::path& path, uint64_t key_hash, const SoftLabelCodec& codec);
  ~EpochReader();
  EpochReader(const EpochReader&) = delete;
  EpochReader& operator=(const EpochReader&) = delete;

  int64_t steps() const { return static_cast<int64_t>(offsets_.size()); }
  SoftLabelRecord read(int64_t step) const;

 private:
  std::filesystem::path path_;
  const SoftLabelCodec& codec_;
  std::FILE* file_ = nullptr;
  uint64_t file_size_ = 0;
  std::vector<uint64_t> offsets_;
};

// Writes an epoch's records in step order into a private partial file, renamed into place by
// finish(): readers only ever see complete epochs, and concurrent writers of the same epoch
// (two runs of a sweep) each produce the same complete file. Destroyed unfinished, it leaves
// nothing behind.
class EpochWriter {
 public:
  EpochWriter(const std::filesystem::path& path, uint64_t key_hash, const SoftLabelCodec& codec, int64_t steps);
  ~EpochWriter();
  EpochWriter(const EpochWriter&) = delete;
  EpochWriter& operator=(const EpochWriter&) = delete;

  int64_t next_step() const { return static_cast<int64_t>(offsets_.size()); }
  void append(const at::Tensor& ids, const std::vector<uint8_t>& encoded);
  void finish();  // requires all `steps` records

 private:
  std::filesystem::path path_, partial_;
  uint64_t key_hash_;
  const SoftLabelCodec& codec_;
  int64_t steps_;
  std::FILE* file_ = nullptr;
  std::vector<uint64_t> offsets_;
};

// The folder of one key inside a store root.
class SoftLabelStore {
 public:
  // Nothing is created until write_key(); an existing folder whose key.json differs from `key`
  // (a hash collision or a hand-edited file) is refused.
  SoftLabelStore(std::filesystem::path root, nlohmann::json key);

  const std::filesystem::path& folder() const { return folder_; }
  uint64_t key_hash() const { return key_hash_; }
  const nlohmann::json& key() const { return key_; }

  std::filesystem::path epoch_path(int64_t epoch) const;
  bool has_epoch(int64_t epoch) const;
  std::vector<int64_t> epochs() const;  // complete epochs, ascending
  void write_key() const;               // creates the folder and key.json

  // The teacher's accuracy on a validation pipeline (named by `val_key`), when stored.
  std::optional<nlohmann::json> teacher_accuracy(const std::string& val_key) const;
  void save_teacher_accuracy(const std::string& val_key, const nlohmann::json& accuracy) const;

  // For a refusal: how the keys of the root's other stores differ from this one
  // ("teacher.identity: checkpoint:1f.. there, checkpoint:9a.. here"), one line per store.
  std::vector<std::string> other_stores() const;

 private:
  std::filesystem::path root_, folder_;
  nlohmann::json key_;
  uint64_t key_hash_;
};

}  // namespace ssld::host
