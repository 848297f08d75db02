#include "mine/candidate_selection.hpp"

#include "core/bounded_input.hpp"

#include <ssld/error.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace ssld::host {

ScoreKind score_kind_of(const std::string& name) {
  if (name == "max_probability") return ScoreKind::MaxProbability;
  if (name == "margin") return ScoreKind::Margin;
  if (name == "entropy") return ScoreKind::Entropy;
  if (name == "random") return ScoreKind::Random;
  throw std::invalid_argument("unknown score '" + name + "'");
}

std::string name_of(ScoreKind kind) {
  switch (kind) {
    case ScoreKind::MaxProbability: return "max_probability";
    case ScoreKind::Margin: return "margin";
    case ScoreKind::Entropy: return "entropy";
    case ScoreKind::Random: return "random";
  }
  return "?";
}

ClassBalance class_balance_of(const std::string& name) {
  if (name == "none") return ClassBalance::None;
  if (name == "equal") return ClassBalance::Equal;
  if (name == "strict") return ClassBalance::Strict;
  throw std::invalid_argument("unknown class balance '" + name + "'");
}

double confidence_score(const float* probabilities, int64_t classes, ScoreKind kind) {
  double first = 0, second = 0, entropy = 0;
  for (int64_t c = 0; c < classes; ++c) {
    const double p = probabilities[c];
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) {
      second = p;
    }
    if (p > 0) entropy -= p * std::log(p);
  }
  switch (kind) {
    case ScoreKind::MaxProbability: return first;
    case ScoreKind::Margin: return first - second;
    case ScoreKind::Entropy: return classes > 1 ? std::clamp(1.0 - entropy / std::log(double(classes)), 0.0, 1.0) : 1.0;
    case ScoreKind::Random: break;
  }
  throw std::logic_error("confidence_score: a random score is drawn by the miner");
}

bool ranks_before(const Candidate& a, const Candidate& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.position < b.position;
}

CandidateSelection::CandidateSelection(SelectionSettings settings, int64_t num_classes)
    : settings_(std::move(settings)), num_classes_(num_classes), heaps_(static_cast<size_t>(num_classes)) {
  selected_class_.assign(static_cast<size_t>(num_classes), settings_.classes.empty());
  for (const int64_t c : settings_.classes)
    if (c >= 0 && c < num_classes) selected_class_[static_cast<size_t>(c)] = true;
  const int64_t classes = settings_.classes.empty() ? num_classes : static_cast<int64_t>(settings_.classes.size());
  // The most a class can contribute to the result: nothing beyond it needs keeping.
  int64_t capacity = settings_.top_k_per_class > 0 ? settings_.top_k_per_class : std::numeric_limits<int64_t>::max();
  if (settings_.max_total > 0) {
    const int64_t share = settings_.balance == ClassBalance::None ? settings_.max_total
                                                                  : settings_.max_total / std::max<int64_t>(1, classes);
    capacity = std::min(capacity, share);
  }
  capacity_ = capacity == std::numeric_limits<int64_t>::max() ? -1 : capacity;
}

CandidateSelection::Verdict CandidateSelection::screen(const Candidate& candidate) const {
  if (candidate.predicted < 0 || candidate.predicted >= num_classes_ ||
      !selected_class_[static_cast<size_t>(candidate.predicted)])
    return Verdict::ClassNotSelected;
  if (candidate.score < settings_.min_confidence) return Verdict::BelowMinConfidence;
  return Verdict::Kept;
}

CandidateSelection::Verdict CandidateSelection::offer(const Candidate& candidate) {
  const Verdict verdict = screen(candidate);
  if (verdict == Verdict::ClassNotSelected) ++rejections_.class_not_selected;
  if (verdict == Verdict::BelowMinConfidence) ++rejections_.below_min_confidence;
  if (verdict != Verdict::Kept) return verdict;
  // The heap's front is its worst candidate: std heaps put the "largest" first, and with
  // ranks_before as "less", the largest is the one ranking last.
  auto& heap = heaps_[static_cast<size_t>(candidate.predicted)];
  if (capacity_ < 0 || static_cast<int64_t>(heap.size()) < capacity_) {
    heap.push_back(candidate);
    std::push_heap(heap.begin(), heap.end(), ranks_before);
    return Verdict::Kept;
  }
  ++rejections_.not_in_top_k;
  if (capacity_ == 0 || !ranks_before(candidate, heap.front())) return Verdict::NotInTopK;
  std::pop_heap(heap.begin(), heap.end(), ranks_before);
  heap.back() = candidate;
  std::push_heap(heap.begin(), heap.end(), ranks_before);
  return Verdict::Kept;
}

void CandidateSelection::merge(const CandidateSelection& other) {
  if (other.num_classes_ != num_classes_)
    throw std::invalid_argument("merging selections over " + std::to_string(other.num_classes_) + " and " +
                                std::to_string(num_classes_) + " classes");
  // A candidate the other stream kept and this one's heap pushes out counts as not_in_top_k
  // here, just as when it met the better candidates in one stream.
  for (const auto& heap : other.heaps_)
    for (const Candidate& candidate : heap) offer(candidate);
  rejections_.class_not_selected += other.rejections_.class_not_selected;
  rejections_.below_min_confidence += other.rejections_.below_min_confidence;
  rejections_.not_in_top_k += other.rejections_.not_in_top_k;
}

CandidateSelection::Result CandidateSelection::select() const {
  Result result;
  result.rejections = rejections_;
  std::vector<std::vector<Candidate>> per_class(heaps_.size());
  for (size_t c = 0; c < heaps_.size(); ++c) {
    per_class[c] = heaps_[c];
    std::sort(per_class[c].begin(), per_class[c].end(), ranks_before);
  }
  if (settings_.balance == ClassBalance::Strict) {
    size_t smallest = std::numeric_limits<size_t>::max();
    for (const auto& kept : per_class)
      if (!kept.empty()) smallest = std::min(smallest, kept.size());
    for (auto& kept : per_class) {
      if (kept.size() <= smallest) continue;
      result.rejections.class_balance += static_cast<int64_t>(kept.size() - smallest);
      kept.resize(smallest);
    }
  }
  for (const auto& kept : per_class) result.selected.insert(result.selected.end(), kept.begin(), kept.end());
  // With balance, the capacity already holds each class to its share; without, the best win.
  if (settings_.max_total > 0 && static_cast<int64_t>(result.selected.size()) > settings_.max_total) {
    std::vector<Candidate> best = result.selected;
    std::nth_element(best.begin(), best.begin() + settings_.max_total - 1, best.end(), ranks_before);
    const Candidate last = best[static_cast<size_t>(settings_.max_total - 1)];
    const auto cut = std::remove_if(result.selected.begin(), result.selected.end(),
                                    [&](const Candidate& c) { return ranks_before(last, c); });
    result.rejections.over_max_total += static_cast<int64_t>(result.selected.end() - cut);
    result.selected.erase(cut, result.selected.end());
  }
  return result;
}

namespace {
nlohmann::json candidate_json(const Candidate& c) {
  return nlohmann::json::array({c.position, c.source, c.index, c.id, c.predicted, c.probability, c.score});
}
Candidate candidate_of(const nlohmann::json& j) {
  Candidate c;
  c.position = json_int(j.at(0));
  const int64_t source = json_int(j.at(1));
  if (source < 0 || source > INT32_MAX) throw Error("a candidate's source " + std::to_string(source) + " is out of range");
  c.source = static_cast<int32_t>(source);
  c.index = json_int(j.at(2));
  c.id = json_uint(j.at(3));
  c.predicted = json_int(j.at(4));
  c.probability = j.at(5).get<double>();
  c.score = j.at(6).get<double>();
  return c;
}
}  // namespace

nlohmann::json CandidateSelection::to_json() const {
  nlohmann::json heaps = nlohmann::json::array();
  for (const auto& heap : heaps_) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& candidate : heap) list.push_back(candidate_json(candidate));
    heaps.push_back(std::move(list));
  }
  return {{"heaps", std::move(heaps)},
          {"rejections",
           {{"class_not_selected", rejections_.class_not_selected},
            {"below_min_confidence", rejections_.below_min_confidence},
            {"not_in_top_k", rejections_.not_in_top_k}}}};
}

void CandidateSelection::load_json(const nlohmann::json& state) {
  const auto& heaps = state.at("heaps");
  if (heaps.size() != heaps_.size())
    throw std::runtime_error("the saved selection has " + std::to_string(heaps.size()) + " classes, the teacher " +
                             std::to_string(heaps_.size()));
  for (size_t c = 0; c < heaps_.size(); ++c) {
    heaps_[c].clear();
    for (const auto& item : heaps[c]) {
      heaps_[c].push_back(candidate_of(item));
      if (heaps_[c].back().predicted != static_cast<int64_t>(c))
        throw Error("a candidate kept for class " + std::to_string(c) + " predicts class " +
                    std::to_string(heaps_[c].back().predicted));
    }
    std::make_heap(heaps_[c].begin(), heaps_[c].end(), ranks_before);
  }
  const auto& rejections = state.at("rejections");
  rejections_.class_not_selected = json_int(rejections.at("class_not_selected"));
  rejections_.below_min_confidence = json_int(rejections.at("below_min_confidence"));
  rejections_.not_in_top_k = json_int(rejections.at("not_in_top_k"));
}

}  // namespace ssld::host
