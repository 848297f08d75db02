#include "image_ops.hpp"

#include <ssld/error.hpp>

#include <ATen/ops/empty.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace ssld::augment {

cv::Mat as_mat(const at::Tensor& image) {
  return cv::Mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)),
                 CV_8UC(static_cast<int>(image.size(2))), image.data_ptr<uint8_t>());
}

at::Tensor new_image(int64_t height, int64_t width, int64_t channels) {
  return at::empty({height, width, channels}, at::kByte);
}

namespace {

// PIL's filters (Pillow's Resample.c): a weight function and its support at scale 1.
struct Filter {
  double support;
  double (*weight)(double);
};

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

const Filter& filter_of(Interpolation interpolation) {
  static const Filter bilinear{1.0, [](double x) { x = std::abs(x); return x < 1.0 ? 1.0 - x : 0.0; }};
  static const Filter bicubic{2.0, [](double x) {
    constexpr double a = -0.5;
    x = std::abs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
  }};
  static const Filter box{0.5, [](double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }};
  static const Filter hamming{1.0, [](double x) {
    x = std::abs(x);
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x *= M_PI;
    return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
  }};
  static const Filter lanczos{3.0, [](double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }};
  switch (interpolation) {
    case Interpolation::Bicubic: return bicubic;
    case Interpolation::Box: return box;
    case Interpolation::Hamming: return hamming;
    case Interpolation::Lanczos: return lanczos;
    default: return bilinear;
  }
}

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's fixed point for 8-bit images

// For each output position: the first input position, how many follow, and their weights.
struct Taps {
  int64_t width = 0;  // weights per output position
  std::vector<int64_t> first, count;
  std::vector<int32_t> weights;
};

Taps taps_for(int64_t in, int64_t out, const Filter& filter) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);  // wider when shrinking: the antialiasing
  const double support = filter.support * filter_scale;
  Taps taps;
  taps.width = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.first.resize(static_cast<size_t>(out));
  taps.count.resize(static_cast<size_t>(out));
  taps.weights.assign(static_cast<size_t>(out * taps.width), 0);
  std::vector<double> weights(static_cast<size_t>(taps.width));
  for (int64_t o = 0; o < out; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    // PIL rounds with a cast, which truncates toward zero, then clamps.
    const int64_t first = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    const int64_t count = std::min<int64_t>(in, static_cast<int64_t>(center + support + 0.5)) - first;
    double sum = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      weights[k] = filter.weight((static_cast<double>(k + first) - center + 0.5) / filter_scale);
      sum += weights[k];
    }
    for (int64_t k = 0; k < count; ++k) {
      const double w = (sum != 0.0 ? weights[k] / sum : weights[k]) * (1 << kPrecisionBits);
      taps.weights[o * taps.width + k] = static_cast<int32_t>(w < 0 ? w - 0.5 : w + 0.5);
    }
    taps.first[o] = first;
    taps.count[o] = count;
  }
  return taps;
}

uint8_t clip8(int32_t value) {
  if (value >= (int32_t{1} << kPrecisionBits << 8)) return 255;
  if (value <= 0) return 0;
  return static_cast<uint8_t>(value >> kPrecisionBits);
}

// The horizontal pass over rows [row_begin, row_end), all of a pixel's channels at once (PIL's
// INT32 sums: its weights sum to 2^22, so 255 times their positive part stays below 2^31).
template <int kChannels>
void resample_rows(const uint8_t* in, int64_t in_width, int64_t channels, const Taps& taps, int64_t row_begin,
                   int64_t row_end, uint8_t* out) {
  const int64_t c_count = kChannels > 0 ? kChannels : channels;
  const int64_t out_width = static_cast<int64_t>(taps.first.size());
  std::vector<int32_t> sums(static_cast<size_t>(c_count));
  for (int64_t y = row_begin; y < row_end; ++y) {
    const uint8_t* row = in + y * in_width * c_count;
    uint8_t* dst = out + (y - row_begin) * out_width * c_count;
    for (int64_t x = 0; x < out_width; ++x) {
      const int32_t* w = &taps.weights[x * taps.width];
      const uint8_t* src = row + taps.first[x] * c_count;
      const int64_t count = taps.count[x];
      if constexpr (kChannels == 1) {
        int32_t sum = int32_t{1} << (kPrecisionBits - 1);
        for (int64_t k = 0; k < count; ++k) sum += src[k] * w[k];
        dst[x] = clip8(sum);
      } else if constexpr (kChannels == 3) {
        int32_t s0 = int32_t{1} << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int64_t k = 0; k < count; ++k) {
          s0 += src[3 * k] * w[k];
          s1 += src[3 * k + 1] * w[k];
          s2 += src[3 * k + 2] * w[k];
        }
        dst[3 * x] = clip8(s0), dst[3 * x + 1] = clip8(s1), dst[3 * x + 2] = clip8(s2);
      } else {
        std::fill(sums.begin(), sums.end(), int32_t{1} << (kPrecisionBits - 1));
        for (int64_t k = 0; k < count; ++k)
          for (int64_t c = 0; c < c_count; ++c) sums[c] += src[k * c_count + c] * w[k];
        for (int64_t c = 0; c < c_count; ++c) dst[x * c_count + c] = clip8(sums[c]);
      }
    }
  }
}

// One pass of a contiguous uint8 HWC image: along the columns (axis 1, rows [row_begin,
// row_end) only) or along the rows (axis 0, the image's first row being row_begin of the source).
at::Tensor resample_axis(const at::Tensor& image, int axis, const Taps& taps, int64_t row_begin, int64_t row_end) {
  const int64_t channels = image.size(2), in_width = image.size(1);
  const int64_t out = static_cast<int64_t>(taps.first.size());
  const uint8_t* in = image.data_ptr<uint8_t>();
  if (axis == 1) {
    at::Tensor result = new_image(row_end - row_begin, out, channels);
    uint8_t* dst = result.data_ptr<uint8_t>();
    if (channels == 3) resample_rows<3>(in, in_width, channels, taps, row_begin, row_end, dst);
    else if (channels == 1) resample_rows<1>(in, in_width, channels, taps, row_begin, row_end, dst);
    else resample_rows<0>(in, in_width, channels, taps, row_begin, row_end, dst);
    return result;
  }
  // The vertical pass a whole row at a time: the same sums as PIL's, in an order the compiler
  // vectorizes (each output row accumulates its source rows times one weight each).
  at::Tensor result = new_image(out, in_width, channels);
  uint8_t* dst = result.data_ptr<uint8_t>();
  const int64_t row = in_width * channels;
  std::vector<int32_t> sums(static_cast<size_t>(row));
  for (int64_t y = 0; y < out; ++y) {
    const int32_t* w = &taps.weights[y * taps.width];
    std::fill(sums.begin(), sums.end(), int32_t{1} << (kPrecisionBits - 1));
    for (int64_t k = 0; k < taps.count[y]; ++k) {
      const uint8_t* src = in + (taps.first[y] - row_begin + k) * row;
      const int32_t weight = w[k];
      int32_t* sum = sums.data();
      for (int64_t i = 0; i < row; ++i) sum[i] += src[i] * weight;
    }
    uint8_t* out_row = dst + y * row;
    for (int64_t i = 0; i < row; ++i) out_row[i] = clip8(sums[i]);
  }
  return result;
}

// PIL's nearest neighbour (ImagingScaleAffine): positions accumulated in steps of in / out.
at::Tensor resize_nearest(const at::Tensor& image, int64_t height, int64_t width) {
  const int64_t channels = image.size(2), in_height = image.size(0), in_width = image.size(1);
  auto positions = [](int64_t in, int64_t out) {
    std::vector<int64_t> index(static_cast<size_t>(out));
    const double step = static_cast<double>(in) / static_cast<double>(out);
    double position = step * 0.5;
    for (int64_t i = 0; i < out; ++i, position += step)
      index[i] = std::clamp<int64_t>(static_cast<int64_t>(position), 0, in - 1);
    return index;
  };
  const auto rows = positions(in_height, height), columns = positions(in_width, width);
  at::Tensor result = new_image(height, width, channels);
  const uint8_t* in = image.data_ptr<uint8_t>();
  uint8_t* dst = result.data_ptr<uint8_t>();
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      std::memcpy(dst + (y * width + x) * channels, in + (rows[y] * in_width + columns[x]) * channels,
                  static_cast<size_t>(channels));
  return result;
}

}  // namespace

at::Tensor resize(const at::Tensor& image, int64_t height, int64_t width, Interpolation interpolation) {
  if (image.size(0) == height && image.size(1) == width) return image;
  const at::Tensor source = image.contiguous();
  if (interpolation == Interpolation::Nearest) return resize_nearest(source, height, width);
  const Filter& filter = filter_of(interpolation);
  // As PIL: the horizontal pass over only the rows the vertical pass reads, rounded to uint8.
  const bool vertical = height != source.size(0);
  const Taps rows = vertical ? taps_for(source.size(0), height, filter) : Taps{};
  const int64_t row_begin = vertical ? rows.first.front() : 0;
  const int64_t row_end = vertical ? rows.first.back() + rows.count.back() : source.size(0);
  at::Tensor out = source;
  int64_t offset = 0;
  if (width != source.size(1)) {
    out = resample_axis(source, 1, taps_for(source.size(1), width, filter), row_begin, row_end);
    offset = row_begin;
  }
  if (vertical) out = resample_axis(out, 0, rows, offset, 0);
  return out;
}

at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width, uint8_t fill) {
  const int64_t rows = image.size(0), cols = image.size(1);
  if (top >= 0 && left >= 0 && top + height <= rows && left + width <= cols)
    return image.slice(0, top, top + height).slice(1, left, left + width).contiguous();
  at::Tensor out = new_image(height, width, image.size(2)).fill_(fill);
  const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min(top + height, rows);
  const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min(left + width, cols);
  if (y0 < y1 && x0 < x1)
    out.slice(0, y0 - top, y1 - top).slice(1, x0 - left, x1 - left).copy_(image.slice(0, y0, y1).slice(1, x0, x1));
  return out;
}

Interpolation interpolation_of(const std::string& name) {
  if (name == "bicubic") return Interpolation::Bicubic;
  if (name == "nearest") return Interpolation::Nearest;
  if (name == "box" || name == "area") return Interpolation::Box;
  if (name == "hamming") return Interpolation::Hamming;
  if (name == "lanczos") return Interpolation::Lanczos;
  return Interpolation::Bilinear;
}

std::pair<int64_t, int64_t> size_option(const Options& options, const std::string& key) {
  const auto size = options.get_int_list(key);
  if (size.empty() || size.size() > 2 || size[0] <= 0 || size.back() <= 0)
    throw option_error(options, key, key + " must be [side] or [height, width], positive");
  return {size[0], size.back()};
}

uint8_t pixel_option(const Options& options, const std::string& key) {
  const int64_t value = options.get_int(key);
  if (value < 0 || value > 255) throw option_error(options, key, key + " must lie in [0, 255]");
  return static_cast<uint8_t>(value);
}

std::pair<double, double> range_option(const Options& options, const std::string& key) {
  const auto range = options.get_float_list(key);
  if (range.size() != 2 || range[0] > range[1]) throw option_error(options, key, key + " must be [low, high] with low <= high");
  return {range[0], range[1]};
}

void blend(const cv::Mat& a, const cv::Mat& b, double alpha, cv::Mat& out) {
  cv::addWeighted(a, alpha, b, 1.0 - alpha, 0.0, out);  // saturating for CV_8U
}

cv::Mat grayscale_like(const cv::Mat& image) {
  if (image.channels() == 1) return image.clone();
  cv::Mat gray, replicated;
  cv::cvtColor(image, gray, cv::COLOR_RGB2GRAY);
  cv::cvtColor(gray, replicated, cv::COLOR_GRAY2RGB);
  return replicated;
}

}  // namespace ssld::augment

namespace ssld::augment {
namespace {

// Pillow's Geometry.c coordinate rules: COORD truncates towards zero but maps negatives to -1,
// FLOOR is a true floor.
int coord(double v) { return v < 0.0 ? -1 : static_cast<int>(v); }
int floor_int(double v) { return v < 0.0 ? static_cast<int>(std::floor(v)) : static_cast<int>(v); }

struct Plane {  // a uint8 HWC image, read as PIL reads it
  const uint8_t* data;
  int height, width, channels;
  uint8_t at(int y, int x, int c) const { return data[(static_cast<int64_t>(y) * width + x) * channels + c]; }
  int clip_x(int x) const { return x < 0 ? 0 : x < width ? x : width - 1; }
};

double bilinear_tap(double a, double b, double d) { return a + (b - a) * d; }
double bicubic_tap(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

// bilinear_filter32RGB / bicubic_filter32RGB: false when (xin, yin) lies outside the input.
bool filter_sample(const Plane& in, double xin, double yin, bool cubic, uint8_t* out) {
  if (xin < 0.0 || xin >= in.width || yin < 0.0 || yin >= in.height) return false;
  xin -= 0.5;
  yin -= 0.5;
  int x = floor_int(xin), y = floor_int(yin);
  const double dx = xin - x, dy = yin - y;
  const auto row_in = [&](int row) { return row >= 0 && row < in.height; };
  for (int c = 0; c < in.channels; ++c) {
    if (!cubic) {
      const int x0 = in.clip_x(x), x1 = in.clip_x(x + 1), top = std::clamp(y, 0, in.height - 1);
      const double v1 = bilinear_tap(in.at(top, x0, c), in.at(top, x1, c), dx);
      const double v2 = row_in(y + 1) ? bilinear_tap(in.at(y + 1, x0, c), in.at(y + 1, x1, c), dx) : v1;
      out[c] = static_cast<uint8_t>(bilinear_tap(v1, v2, dy));
      continue;
    }
    const int xs[4] = {in.clip_x(x - 1), in.clip_x(x), in.clip_x(x + 1), in.clip_x(x + 2)};
    const auto row = [&](int r) {
      return bicubic_tap(in.at(r, xs[0], c), in.at(r, xs[1], c), in.at(r, xs[2], c), in.at(r, xs[3], c), dx);
    };
    double v[4];
    v[0] = row(std::clamp(y - 1, 0, in.height - 1));
    for (int k = 1; k < 4; ++k) v[k] = row_in(y - 1 + k) ? row(y - 1 + k) : v[k - 1];
    const double value = bicubic_tap(v[0], v[1], v[2], v[3], dy);
    out[c] = value <= 0.0 ? 0 : value >= 255.0 ? 255 : static_cast<uint8_t>(value);
  }
  return true;
}

bool fits_fixed_point(const std::array<double, 6>& a, int x, int y) {
  return std::fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && std::fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
}

// ImagingTransformAffine's nearest paths, in the order PIL picks them.
void nearest_affine(const Plane& in, const std::array<double, 6>& a, uint8_t* out) {
  const int w = in.width, h = in.height, c = in.channels;
  const auto put = [&](int y, int x, int yin, int xin) {
    std::memcpy(out + (static_cast<int64_t>(y) * w + x) * c, in.data + (static_cast<int64_t>(yin) * w + xin) * c,
                static_cast<size_t>(c));
  };
  if (a[1] == 0 && a[3] == 0) {  // ImagingScaleAffine: positions accumulated in floating point
    std::vector<int> columns(static_cast<size_t>(w), -1);
    double xo = a[2] + a[0] * 0.5;
    for (int x = 0; x < w; ++x, xo += a[0]) {
      const int xin = coord(xo);
      if (xin >= 0 && xin < w) columns[x] = xin;
    }
    double yo = a[5] + a[4] * 0.5;
    for (int y = 0; y < h; ++y, yo += a[4]) {
      const int yin = coord(yo);
      if (yin < 0 || yin >= h) continue;
      for (int x = 0; x < w; ++x)
        if (columns[x] >= 0) put(y, x, yin, columns[x]);
    }
    return;
  }
  if (fits_fixed_point(a, 0, 0) && fits_fixed_point(a, w, h) && fits_fixed_point(a, 0, h) &&
      fits_fixed_point(a, w, 0)) {  // affine_fixed: 16.16 fixed point
    const auto fix = [](double v) { return floor_int(v * 65536.0 + 0.5); };
    const int a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (int y = 0; y < h; ++y, a2 += a1, a5 += a4) {
      int xx = a2, yy = a5;
      for (int x = 0; x < w; ++x, xx += a0, yy += a3) {
        const int xin = xx >> 16, yin = yy >> 16;  // arithmetic shifts: floors, as in C on PIL's platforms
        if (xin >= 0 && xin < w && yin >= 0 && yin < h) put(y, x, yin, xin);
      }
    }
    return;
  }
  double xo = a[2] + a[1] * 0.5 + a[0] * 0.5, yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
  for (int y = 0; y < h; ++y, xo += a[1], yo += a[4]) {
    double xx = xo, yy = yo;
    for (int x = 0; x < w; ++x, xx += a[0], yy += a[3]) {
      const int xin = coord(xx), yin = coord(yy);
      if (xin >= 0 && xin < w && yin >= 0 && yin < h) put(y, x, yin, xin);
    }
  }
}

}  // namespace

at::Tensor affine_transform(const at::Tensor& image, const std::array<double, 6>& a, Interpolation interpolation,
                            uint8_t fill) {
  if (interpolation != Interpolation::Nearest && interpolation != Interpolation::Bilinear &&
      interpolation != Interpolation::Bicubic)
    throw Error("affine transforms resample with nearest, bilinear or bicubic only (as PIL)");
  const at::Tensor source = image.contiguous();
  const Plane in{source.data_ptr<uint8_t>(), static_cast<int>(source.size(0)), static_cast<int>(source.size(1)),
                 static_cast<int>(source.size(2))};
  at::Tensor result = new_image(in.height, in.width, in.channels).fill_(fill);
  uint8_t* out = result.data_ptr<uint8_t>();
  if (interpolation == Interpolation::Nearest) {
    nearest_affine(in, a, out);
    return result;
  }
  const bool cubic = interpolation == Interpolation::Bicubic;
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < in.width; ++x) {
      const double xin = x + 0.5, yin = y + 0.5;
      filter_sample(in, a[0] * xin + a[1] * yin + a[2], a[3] * xin + a[4] * yin + a[5], cubic,
                    out + (static_cast<int64_t>(y) * in.width + x) * in.channels);
    }
  return result;
}

at::Tensor rotate(const at::Tensor& image, double degrees, Interpolation interpolation, uint8_t fill) {
  // Image.rotate's matrix: the inverse rotation about (w / 2, h / 2), its terms rounded to 15
  // decimals as Python's round() does.
  degrees = std::fmod(degrees, 360.0);
  if (degrees < 0) degrees += 360.0;
  if (degrees == 0.0) return image.contiguous().clone();
  if (degrees == 180.0) return image.flip({0, 1}).contiguous();
  const double angle = -degrees * M_PI / 180.0;
  const auto round15 = [](double v) { return std::round(v * 1e15) / 1e15; };
  const double cx = image.size(1) / 2.0, cy = image.size(0) / 2.0;
  std::array<double, 6> a = {round15(std::cos(angle)), round15(std::sin(angle)), 0.0,
                             round15(-std::sin(angle)), round15(std::cos(angle)), 0.0};
  a[2] = a[0] * -cx + a[1] * -cy + a[2] + cx;
  a[5] = a[3] * -cx + a[4] * -cy + a[5] + cy;
  return affine_transform(image, a, interpolation, fill);
}

}  // namespace ssld::augment
