// A teacher-cache store folder's key.json and teacher_accuracy.json (soft_label_store.hpp), read
// when a store is opened (the stored key compared with the run's, differences listed), when
// another store's key is listed for a refusal (other_stores) and when the teacher's accuracy is
// looked up. The input is written as the store's own key.json, as a sibling store's key.json and
// as teacher_accuracy.json.
// Seeds: the key.json and teacher_accuracy.json that write_key and save_teacher_accuracy write.
#include "fuzz_support.hpp"
#include "teacher_cache/soft_label_store.hpp"

namespace ssld::fuzz {
namespace {

const nlohmann::json& run_key() {
  static const nlohmann::json key = {
      {"teacher", {{"identity", "checkpoint:1f2e3d4c"}, {"table", {{"type", "checkpoint"}, {"weights", "/w.pth"}}}}},
      {"data", {{"sources", {{{"type", "idx"}, {"images", "/d/train.gz"}}}}, {"augment", nlohmann::json::array()}}},
      {"seed", 7},
      {"device", "cpu"},
      {"format", {{"name", "topk"}, {"top_k", 5}, {"classes", 10}}}};
  return key;
}

}  // namespace

void write_seeds(const std::filesystem::path& folder) {
  const auto root = scratch() / "seed-root";
  const host::SoftLabelStore store(root, run_key());
  store.write_key();
  store.save_teacher_accuracy("val-1", {{"top1", 71.5}, {"top5", 90.25}, {"images", 10000}});
  std::filesystem::copy_file(store.folder() / "key.json", folder / "key.json");
  std::filesystem::copy_file(store.folder() / "teacher_accuracy.json", folder / "teacher_accuracy.json");
  nlohmann::json other = run_key();
  other["seed"] = 8;
  other["teacher"]["table"]["weights"] = nlohmann::json::array({1, 2, {{"x", nullptr}}});
  write_text(folder / "other_key.json", other.dump(2));
  std::filesystem::remove_all(root);
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fuzz = ssld::fuzz;
  static const std::filesystem::path root = fuzz::scratch() / "store";
  static const std::filesystem::path own = ssld::host::SoftLabelStore(root, fuzz::run_key()).folder();
  static const bool made = std::filesystem::create_directories(own) && std::filesystem::create_directories(root / "other");
  (void)made;
  fuzz::write_bytes(root / "other" / "key.json", data, size);
  fuzz::write_bytes(own / "teacher_accuracy.json", data, size);
  fuzz::write_text(own / "key.json", fuzz::run_key().dump(2));
  fuzz::refuse_or_read([&] {
    const ssld::host::SoftLabelStore store(root, fuzz::run_key());
    (void)store.teacher_accuracy("val-1");
    (void)store.other_stores();
  });
  fuzz::write_bytes(own / "key.json", data, size);
  fuzz::refuse_or_read([&] { const ssld::host::SoftLabelStore store(root, fuzz::run_key()); });
  return 0;
}
