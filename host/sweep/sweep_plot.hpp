// A sweep's figures, as self-contained SVG (no plotting library):
//   top1_plot: one row per group of runs (an assignment of the axes), its mean best top-1 as a
//              dot and mean +- std as a bar, best first, so an ablation reads top to bottom like
//              the grouped table beside it;
//   curves_plot: the validation top-1 of every run after each epoch, one line per run.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace ssld::host {

struct PlotPoint {
  std::string label;  // the group's axis values
  double mean = 0;
  double std = 0;     // 0 for a single run: no bar
  size_t runs = 0;
};

struct Curve {
  std::string label;  // the run's id
  std::vector<std::pair<double, double>> points;  // (epoch, top-1 %)
};

// Deterministic text (the same points give the same bytes), for `ssld report` to rewrite.
std::string top1_plot(const std::vector<PlotPoint>& points, const std::string& title);
std::string curves_plot(const std::vector<Curve>& curves, const std::string& title);

}  // namespace ssld::host
