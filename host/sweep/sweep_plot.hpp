// A sweep's one figure, as a self-contained SVG (no plotting library): one row per group of
// runs (an assignment of the axes), its mean best top-1 as a dot and mean +- std as a bar, best
// first, so an ablation reads top to bottom like the grouped table beside it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ssld::host {

struct PlotPoint {
  std::string label;  // the group's axis values
  double mean = 0;
  double std = 0;     // 0 for a single run: no bar
  size_t runs = 0;
};

// Deterministic text (the same points give the same bytes), for `ssld report` to rewrite.
std::string top1_plot(const std::vector<PlotPoint>& points, const std::string& title);

}  // namespace ssld::host
