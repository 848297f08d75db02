// Which candidates `ssld mine` keeps: a confidence score per candidate, then per-class bounded
// heaps (the k best so far of each class), so memory depends on k and the number of classes,
// never on the number of candidates; at the end, class balance and max_total. Pure logic: no
// model, no tensor, so the rules are unit-tested on hand-made scores.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace ssld::host {

// How sure the teacher is, higher = surer; every kind lies in [0, 1].
enum class ScoreKind {
  MaxProbability,  // p_max: the softmax probability of the predicted class
  Margin,          // p_max - p_second: a candidate between two classes scores low
  Entropy,         // 1 - H(p) / ln(C): 1 for a one-hot prediction, 0 for a uniform one
  Random,          // a uniform draw keyed by (seed, sample id): a random subset, for comparisons
};
ScoreKind score_kind_of(const std::string& name);  // "max_probability", "margin", "entropy", "random"
std::string name_of(ScoreKind kind);

// The score of one softmax row of `classes` probabilities (not Random: the miner draws that).
double confidence_score(const float* probabilities, int64_t classes, ScoreKind kind);

enum class ClassBalance {
  None,    // every class keeps up to top_k_per_class; max_total keeps the best overall
  Equal,   // max_total is split equally: each class up to floor(max_total / classes)
  Strict,  // as Equal, then every class is cut to the smallest non-empty class's count
};
ClassBalance class_balance_of(const std::string& name);  // "none", "equal", "strict"

struct SelectionSettings {
  ScoreKind score = ScoreKind::MaxProbability;
  int64_t top_k_per_class = 0;  // 0: no per-class limit
  double min_confidence = 0.0;  // candidates scoring below this are rejected
  int64_t max_total = 0;        // 0: no limit
  ClassBalance balance = ClassBalance::None;
  std::vector<int64_t> classes;  // only candidates the teacher puts in these classes; empty: all
};

struct Candidate {
  int64_t position = 0;     // place in the candidate stream; among equal scores the earlier wins
  int32_t source = 0;       // which candidate source, and the index in it
  int64_t index = 0;
  uint64_t id = 0;          // the sample's stable id
  int64_t predicted = 0;    // the teacher's class
  double probability = 0;   // the teacher's probability of that class
  double score = 0;
};

// Why a candidate is not in the result; the miner adds duplicates and bad images.
struct RejectionCounts {
  int64_t class_not_selected = 0;     // the teacher's class is not in `classes`
  int64_t below_min_confidence = 0;
  int64_t not_in_top_k = 0;           // its class had k better candidates
  int64_t class_balance = 0;          // cut to balance the classes
  int64_t over_max_total = 0;         // max_total was reached by better candidates
};

class CandidateSelection {
 public:
  CandidateSelection(SelectionSettings settings, int64_t num_classes);

  enum class Verdict { Kept, ClassNotSelected, BelowMinConfidence, NotInTopK };
  // The checks that do not depend on other candidates (class, threshold): Kept if it passes.
  Verdict screen(const Candidate& candidate) const;
  // Screens, then keeps it if it is among its class's best so far (pushing out the worst).
  // Counts every rejection, including candidates pushed out later.
  Verdict offer(const Candidate& candidate);

  // The result: per class best first, classes in order, after class balance and max_total.
  // Adds the candidates those two cut to `rejections()` of the returned value.
  struct Result {
    std::vector<Candidate> selected;
    RejectionCounts rejections;
  };
  Result select() const;

  // Folds in the selection of a disjoint stream (another rank's shard): its kept candidates are
  // offered, its rejection counts added. With positions unique across both streams, the heaps
  // and counts end as one selection over both streams would leave them, in any merge order.
  void merge(const CandidateSelection& other);

  const RejectionCounts& rejections() const { return rejections_; }
  int64_t capacity_per_class() const { return capacity_; }  // -1: unbounded
  int64_t num_classes() const { return num_classes_; }

  // The whole state, for the miner's resumable checkpoint.
  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& state);

 private:
  SelectionSettings settings_;
  int64_t num_classes_;
  int64_t capacity_;
  std::vector<bool> selected_class_;
  std::vector<std::vector<Candidate>> heaps_;  // per class; the worst kept candidate on top
  RejectionCounts rejections_;
};

// True when `a` ranks before `b`: higher score, or the same score and earlier in the stream.
bool ranks_before(const Candidate& a, const Candidate& b);

}  // namespace ssld::host
