#include "log/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace ssld::host {

namespace {

constexpr double kWidth = 760, kLabelWidth = 300, kRight = 30, kTop = 40, kRow = 26, kBottom = 40;

std::string xml_escaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string number(double value, const char* format = "%.2f") {
  char text[32];
  std::snprintf(text, sizeof(text), format, value);
  return text;
}

// A tick's label with as many decimals as the step needs (0.0005 -> 4).
std::string tick_text(double value, double step) {
  const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 8);
  char text[48];
  std::snprintf(text, sizeof(text), "%.*f", decimals, std::abs(value) < step * 1e-6 ? 0.0 : value);
  return text;
}

// A step of 1, 2 or 5 times a power of ten that gives about five ticks over `span`.
double tick_step(double span) {
  const double raw = std::max(span, 1e-6) / 5;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double factor : {1.0, 2.0, 5.0})
    if (raw <= factor * power) return factor * power;
  return 10 * power;
}

// [low, high] widened to at least `min_span` and rounded out to whole ticks; returns the tick step.
double axis_range(double& low, double& high, double min_span) {
  if (high - low < min_span) {
    const double center = (low + high) / 2;
    low = center - min_span / 2, high = center + min_span / 2;
  }
  const double step = tick_step(high - low);
  low = std::floor(low / step) * step;
  high = std::max(std::ceil(high / step) * step, low + step);
  return step;
}

std::string svg_header(double width, double height, const std::string& title) {
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << width / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << xml_escaped(title)
      << "</text>\n";
  return svg.str();
}

}  // namespace

std::string top1_plot(const std::vector<PlotPoint>& points, const std::string& title) {
  double low = 100, high = 0;
  for (const auto& point : points) {
    low = std::min(low, point.mean - point.std);
    high = std::max(high, point.mean + point.std);
  }
  if (points.empty()) low = 0, high = 100;
  const double step = axis_range(low, high, 2);  // percentage points: one run or equal means still get an axis
  const double plot_width = kWidth - kLabelWidth - kRight;
  auto x_of = [&](double value) { return kLabelWidth + (value - low) / (high - low) * plot_width; };
  const double height = kTop + kRow * static_cast<double>(std::max<size_t>(points.size(), 1)) + kBottom;
  const double axis_y = height - kBottom;

  std::ostringstream svg;
  svg << svg_header(kWidth, height, title);
  for (double tick = low; tick <= high + step / 2; tick += step) {
    const std::string x = number(x_of(tick), "%.1f");
    svg << "<line x1=\"" << x << "\" y1=\"" << kTop - 6 << "\" x2=\"" << x << "\" y2=\"" << axis_y
        << "\" stroke=\"#ddd\"/>\n<text x=\"" << x << "\" y=\"" << axis_y + 16 << "\" text-anchor=\"middle\">"
        << tick_text(tick, step) << "</text>\n";
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const PlotPoint& point = points[i];
    const std::string y = number(kTop + kRow * (static_cast<double>(i) + 0.5), "%.1f");
    svg << "<text x=\"" << kLabelWidth - 8 << "\" y=\"" << y << "\" dy=\"4\" text-anchor=\"end\">"
        << xml_escaped(point.label) << " (" << point.runs << ")</text>\n";
    if (point.std > 0)
      svg << "<line x1=\"" << number(x_of(point.mean - point.std), "%.1f") << "\" y1=\"" << y << "\" x2=\""
          << number(x_of(point.mean + point.std), "%.1f") << "\" y2=\"" << y << "\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n";
    svg << "<circle cx=\"" << number(x_of(point.mean), "%.1f") << "\" cy=\"" << y
        << "\" r=\"4\" fill=\"#1f77b4\"><title>" << xml_escaped(point.label) << ": " << number(point.mean) << " +- "
        << number(point.std) << "</title></circle>\n";
  }
  svg << "<line x1=\"" << kLabelWidth << "\" y1=\"" << axis_y << "\" x2=\"" << kWidth - kRight << "\" y2=\"" << axis_y
      << "\" stroke=\"black\"/>\n</svg>\n";
  return svg.str();
}

std::string line_plot(const std::vector<Curve>& curves, const std::string& title, const LineAxes& axes) {
  static const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  constexpr double kLeft = 70, kPlotWidth = 520, kLegendWidth = 300, kHeight = 380;
  double low = 0, high = 0, first_x = 0, last_x = 0;
  bool any = false;
  for (const auto& curve : curves)
    for (const auto& [x, y] : curve.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      if (!any) low = high = y, first_x = last_x = x;
      low = std::min(low, y), high = std::max(high, y);
      first_x = std::min(first_x, x), last_x = std::max(last_x, x);
      any = true;
    }
  if (!any) low = 0, high = 1, first_x = 0, last_x = 1;
  const double step = axis_range(low, high, axes.min_y_span > 0 ? axes.min_y_span : std::max(1e-9, (high - low) * 0.1));
  if (last_x <= first_x) last_x = first_x + 1;
  const double axis_y = kHeight - kBottom;
  auto x_of = [&](double x) { return kLeft + (x - first_x) / (last_x - first_x) * kPlotWidth; };
  auto y_of = [&](double y) { return axis_y - (y - low) / (high - low) * (axis_y - kTop); };
  const double legend_rows = static_cast<double>(curves.size()) * 16 + kTop + 10;
  std::ostringstream svg;
  svg << svg_header(kLeft + kPlotWidth + kLegendWidth, std::max(kHeight, legend_rows), title);
  for (double tick = low; tick <= high + step / 2; tick += step) {
    const std::string y = number(y_of(tick), "%.1f");
    svg << "<line x1=\"" << kLeft << "\" y1=\"" << y << "\" x2=\"" << kLeft + kPlotWidth << "\" y2=\"" << y
        << "\" stroke=\"#ddd\"/>\n<text x=\"" << kLeft - 6 << "\" y=\"" << y << "\" dy=\"4\" text-anchor=\"end\">"
        << tick_text(tick, step) << "</text>\n";
  }
  const double x_step = tick_step(last_x - first_x);
  for (double x = std::ceil(first_x / x_step) * x_step; x <= last_x + x_step * 1e-6; x += x_step)
    svg << "<text x=\"" << number(x_of(x), "%.1f") << "\" y=\"" << axis_y + 16 << "\" text-anchor=\"middle\">"
        << tick_text(x, x_step) << "</text>\n";
  svg << "<text x=\"" << kLeft + kPlotWidth / 2 << "\" y=\"" << axis_y + 32 << "\" text-anchor=\"middle\">"
      << xml_escaped(axes.x_label) << "</text>\n"
      << "<text x=\"14\" y=\"" << (kTop + axis_y) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 14 "
      << (kTop + axis_y) / 2 << ")\">" << xml_escaped(axes.y_label) << "</text>\n"
      << "<line x1=\"" << kLeft << "\" y1=\"" << axis_y << "\" x2=\"" << kLeft + kPlotWidth << "\" y2=\"" << axis_y
      << "\" stroke=\"black\"/>\n";
  for (size_t i = 0; i < curves.size(); ++i) {
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    std::string points;
    for (const auto& [x, y] : curves[i].points)
      if (std::isfinite(x) && std::isfinite(y))
        points += (points.empty() ? "" : " ") + number(x_of(x), "%.1f") + "," + number(y_of(y), "%.1f");
    svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"" << points
        << "\"><title>" << xml_escaped(curves[i].label) << "</title></polyline>\n";
    const double legend_y = kTop + 16 * static_cast<double>(i);
    svg << "<line x1=\"" << kLeft + kPlotWidth + 16 << "\" y1=\"" << legend_y << "\" x2=\"" << kLeft + kPlotWidth + 36
        << "\" y2=\"" << legend_y << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>\n<text x=\""
        << kLeft + kPlotWidth + 42 << "\" y=\"" << legend_y << "\" dy=\"4\">" << xml_escaped(curves[i].label) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace ssld::host
