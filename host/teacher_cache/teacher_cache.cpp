#include "teacher_cache/teacher_cache.hpp"

#include "config/config_loader.hpp"
#include "config/toml_json.hpp"
#include "config/toml_options.hpp"

#include <ssld/error.hpp>
#include <ssld/rng.hpp>

#include <ATen/ATen.h>

#include <spdlog/spdlog.h>

namespace ssld::host {

const EnumNames<CacheMode> kCacheModeNames = {{CacheMode::Fill, "fill"}, {CacheMode::Read, "read"}};

namespace {
using T = TeacherCacheSettings;
const SettingsTable<T>& teacher_cache_table() {
  static const SettingsTable<T> table =
      SettingsTable<T>()
          .add_path("store", &T::store,
                    "store root: one folder per teacher/data/seed key inside (default: <output_dir>/teacher_cache)")
          .add("format", &T::format,
               "fp32: the teacher's logits, bit-identical; fp16: half the size; topk: the top_k probabilities, "
               "the rest of the mass spread uniformly (FKD)",
               {"fp32", "fp16", "topk"})
          .add("top_k", &T::top_k, "topk: probabilities kept per sample")
          .add("mode", &T::mode, kCacheModeNames,
               "fill: read the stored epochs, compute and store the others; read: refuse to run unless every "
               "epoch is stored (after `ssld cache-teacher`)");
  return table;
}
}  // namespace

const Schema& teacher_cache_table_schema() { return teacher_cache_table().schema(); }

TeacherCacheSettings read_teacher_cache_settings(const TomlValue& root, const std::string& output_dir) {
  const TomlOptions options(root.at("teacher_cache"), std::make_shared<const Schema>(teacher_cache_table_schema()),
                            "[teacher_cache]");
  TeacherCacheSettings settings = teacher_cache_table().read(options);
  if (settings.store.empty()) settings.store = (std::filesystem::path(output_dir) / "teacher_cache").string();
  return settings;
}

namespace {
nlohmann::json portable(const TomlValue& config, const std::string& table, const std::string& key) {
  if (!config.contains(table) || !config.at(table).is_table() || !config.at(table).contains(key)) return nullptr;
  TomlValue value = config.at(table).at(key);
  make_location_independent(value);
  return toml_to_json(value);
}
}  // namespace

nlohmann::json teacher_cache_key(const TomlValue& stage_config, const Teacher& teacher, uint64_t seed,
                                 c10::Device device, bool channels_last, const SoftLabelCodec& codec,
                                 const nlohmann::json& plugins, int64_t rank, int64_t world_size) {
  TomlValue teacher_table = stage_config.at("teacher");
  make_location_independent(teacher_table);
  nlohmann::json key = {
      {"teacher", {{"identity", teacher.identity()}, {"table", toml_to_json(teacher_table)}}},
      {"data_train", portable(stage_config, "data", "train")},
      {"seed", seed},
      {"device", c10::DeviceTypeName(device.type(), true)},
      {"channels_last", channels_last},
      {"storage", {{"format", codec.name()}, {"top_k", codec.top_k()}, {"classes", codec.classes()}}},
      {"plugins", plugins},
  };
  if (world_size > 1) {
    key["rank"] = rank;
    key["world_size"] = world_size;
  }
  return key;
}

std::string teacher_val_key(const TomlValue& stage_config, uint64_t seed) {
  const nlohmann::json key = {{"data_val", portable(stage_config, "data", "val")}, {"seed", seed}};
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(Rng::purpose_of(key.dump())));
  return text;
}

TeacherCache::TeacherCache(const TeacherCacheSettings& settings, nlohmann::json key, SoftLabelCodec codec,
                           int64_t steps_per_epoch, std::string val_key)
    : settings_(settings), store_(settings.store, std::move(key)), codec_(std::move(codec)),
      steps_per_epoch_(steps_per_epoch), val_key_(std::move(val_key)) {}

TeacherCache::~TeacherCache() = default;

void TeacherCache::require_epochs(int64_t first, int64_t end) const {
  if (settings_.mode != CacheMode::Read) return;
  std::string missing;
  for (int64_t epoch = first; epoch < end; ++epoch)
    if (!store_.has_epoch(epoch)) missing += (missing.empty() ? "" : ", ") + std::to_string(epoch + 1);
  if (missing.empty()) return;
  std::string others;
  for (const auto& line : store_.other_stores()) others += "\n  " + line;
  throw Error("[teacher_cache] mode = \"read\": the store " + store_.folder().string() +
              " has no soft labels for epoch(s) " + missing + " of this teacher and data. Fill them with "
              "`ssld cache-teacher CONFIG --epochs N`, or set mode = \"fill\"." +
              (others.empty() ? std::string(" The store root holds no other key.")
                              : " Stores in the root differ from this run in:" + others));
}

at::Tensor TeacherCache::logits(int64_t epoch, int64_t step, const at::Tensor& ids,
                                const std::function<at::Tensor()>& compute) {
  if (reader_epoch_ != epoch) {
    reader_.reset();
    reader_epoch_ = -1;
    if (store_.has_epoch(epoch)) {
      reader_ = std::make_unique<EpochReader>(store_.epoch_path(epoch), store_.key_hash(), codec_);
      reader_epoch_ = epoch;
      if (reader_->steps() != steps_per_epoch_)
        throw Error("teacher cache: " + store_.epoch_path(epoch).string() + " holds " + std::to_string(reader_->steps()) +
                    " steps, this run's epoch has " + std::to_string(steps_per_epoch_) +
                    ": the store is stale. Delete " + store_.folder().string() + " to refill it.");
    }
  }
  if (reader_) {
    SoftLabelRecord record = reader_->read(step);
    const at::Tensor batch_ids = ids.to(at::kCPU, at::kLong);
    if (!record.ids.equal(batch_ids)) {
      const int64_t n = std::min(record.ids.numel(), batch_ids.numel());
      int64_t position = 0;
      while (position < n && record.ids[position].item<int64_t>() == batch_ids[position].item<int64_t>()) ++position;
      throw Error("teacher cache: " + store_.epoch_path(epoch).string() + " step " + std::to_string(step) +
                  " holds other samples than this run's batch (" + std::to_string(record.ids.numel()) + " stored, " +
                  std::to_string(batch_ids.numel()) + " now; first difference at position " + std::to_string(position) +
                  "): the store is stale, the data changed under the same configuration. Delete " +
                  store_.folder().string() + " to refill it.");
    }
    ++steps_read_;
    return record.logits.to(ids.device());
  }
  if (settings_.mode == CacheMode::Read) require_epochs(epoch, epoch + 1);
  const at::Tensor computed = compute();
  ++steps_computed_;
  if (writer_epoch_ != epoch || !writer_ || writer_->next_step() != step) {
    writer_.reset();
    writer_epoch_ = -1;
    if (step == 0) {  // only whole epochs are stored: a run resumed mid-epoch stores from the next one
      store_.write_key();
      writer_ = std::make_unique<EpochWriter>(store_.epoch_path(epoch), store_.key_hash(), codec_, steps_per_epoch_);
      writer_epoch_ = epoch;
    }
  }
  if (!writer_) return computed;
  const std::vector<uint8_t> encoded = codec_.encode(computed);
  writer_->append(ids, encoded);
  if (writer_->next_step() == steps_per_epoch_) {
    writer_->finish();
    writer_.reset();
    writer_epoch_ = -1;
    spdlog::info("teacher cache: stored epoch {} in {}", epoch + 1, store_.epoch_path(epoch).string());
  }
  if (codec_.format() == SoftLabelCodec::Format::Fp32 && computed.scalar_type() == at::kFloat) return computed;
  return codec_.decode(encoded.data(), computed.size(0)).to(computed.device());
}

// Stored as {top1, top5, samples} next to the key folder's epochs.
std::optional<Accuracy> TeacherCache::teacher_accuracy() const {
  const auto stored = store_.teacher_accuracy(val_key_);
  if (!stored) return std::nullopt;
  return Accuracy{stored->at("top1").get<double>(), stored->at("top5").get<double>(),
                  stored->at("samples").get<int64_t>()};
}

void TeacherCache::save_teacher_accuracy(const Accuracy& accuracy) const {
  store_.save_teacher_accuracy(val_key_, {{"top1", accuracy.top1}, {"top5", accuracy.top5}, {"samples", accuracy.samples}});
}

}  // namespace ssld::host
