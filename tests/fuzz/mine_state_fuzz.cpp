// `ssld mine`'s resumable state (state.json: identity, tally, per-class heaps) as a resumed run
// or rank 0's merge of the shards reads it: parsed and loaded as miner.cpp's read_state does
// (which turns any exception of the loading into ssld::Error; that function is file-local, so
// its steps are repeated here, see README.md), then used as the miner uses it afterwards:
// more candidates offered, another shard merged in, the selection made, the tallies merged.
// Seeds: states written from MineTally::to_json and CandidateSelection::to_json, as save_state does.
#include "core/bounded_input.hpp"
#include "fuzz_support.hpp"
#include "mine/candidate_selection.hpp"
#include "mine/mine_report.hpp"

namespace ssld::fuzz {
namespace {

constexpr int64_t kClasses = 4, kBins = 10;
const char* const kIdentity = "config:abc|teacher:def";

host::SelectionSettings settings() {
  host::SelectionSettings s;
  s.top_k_per_class = 3;
  s.max_total = 8;
  s.balance = host::ClassBalance::Equal;
  s.min_confidence = 0.1;
  return s;
}

host::Candidate candidate(int64_t position, int64_t predicted, double score) {
  host::Candidate c;
  c.position = position;
  c.index = position;
  c.id = static_cast<uint64_t>(1000 + position);
  c.predicted = predicted;
  c.probability = score;
  c.score = score;
  return c;
}

nlohmann::json state(int64_t candidates, bool done) {
  host::MineTally tally(kClasses, kBins);
  host::CandidateSelection selection(settings(), kClasses);
  for (int64_t i = 0; i < candidates; ++i) {
    const double score = 0.05 + 0.9 * static_cast<double>((i * 37) % 100) / 100.0;
    selection.offer(candidate(i, i % kClasses, score));
    tally.predicted_per_class[static_cast<size_t>(i % kClasses)]++;
    tally.histogram[static_cast<size_t>(host::histogram_bin(score, kBins))]++;
  }
  tally.seen = candidates;
  tally.next_step = candidates / 4;
  return {{"identity", kIdentity}, {"done", done}, {"protected_images", 3},
          {"tally", tally.to_json()},   {"selection", selection.to_json()}};
}

}  // namespace

void write_seeds(const std::filesystem::path& folder) {
  write_text(folder / "fresh.json", state(0, false).dump() + "\n");
  write_text(folder / "midway.json", state(13, false).dump() + "\n");
  write_text(folder / "done.json", state(40, true).dump() + "\n");
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fuzz = ssld::fuzz;
  using namespace ssld::host;
  MineTally tally(fuzz::kClasses, fuzz::kBins);
  CandidateSelection selection(fuzz::settings(), fuzz::kClasses);
  // What read_state does: any failure while loading is the user error "start over with --restart".
  try {
    const nlohmann::json state = nlohmann::json::parse(data, data + size);
    if (state.value("identity", "") != fuzz::kIdentity) return 0;
    tally.load_json(state.at("tally"));
    selection.load_json(state.at("selection"));
    if (state.contains("protected_images")) (void)json_int(state.at("protected_images"));
    (void)state.value("done", false);
  } catch (const std::exception&) {
    return 0;
  }
  // What the miner does with a loaded state: nothing here may throw.
  fuzz::refuse_or_read([&] {
    CandidateSelection more = selection;
    for (int64_t i = 0; i < 6; ++i) {
      const Candidate next = fuzz::candidate(1 << 20 | i, i % fuzz::kClasses, 0.99 - 0.1 * i);
      more.offer(next);
      // The tally's per-candidate counts, as mine() keeps them (miner.cpp).
      ++tally.predicted_per_class.at(static_cast<size_t>(next.predicted));
      ++tally.histogram.at(static_cast<size_t>(histogram_bin(next.probability, fuzz::kBins)));
    }
    CandidateSelection merged(fuzz::settings(), fuzz::kClasses);
    merged.merge(selection);
    merged.merge(more);
    const CandidateSelection::Result result = merged.select();
    for (const Candidate& kept : result.selected) (void)histogram_bin(kept.probability, fuzz::kBins);
    MineTally total(fuzz::kClasses, fuzz::kBins);
    total.merge(tally);
    (void)total.to_json().dump();
    (void)selection.to_json().dump();
  });
  return 0;
}
