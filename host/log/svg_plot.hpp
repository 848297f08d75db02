// Figures as self-contained SVG (no plotting library), for a sweep and for every training run:
//   top1_plot: one row per group of runs (an assignment of the axes), its mean best top-1 as a
//              dot and mean +- std as a bar, best first, so an ablation reads top to bottom like
//              the grouped table beside it;
//   line_plot: lines over a shared x axis with a legend (a sweep's validation curves, a run's
//              losses, learning rate and accuracies).
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
  std::string label;  // in the legend
  std::vector<std::pair<double, double>> points;  // (x, y)
};

struct LineAxes {
  std::string x_label, y_label;
  double min_y_span = 0;  // a flat line still gets an axis this tall
};

// Deterministic text (the same points give the same bytes), for `ssld report` to rewrite.
std::string top1_plot(const std::vector<PlotPoint>& points, const std::string& title);
std::string line_plot(const std::vector<Curve>& curves, const std::string& title, const LineAxes& axes);

}  // namespace ssld::host
