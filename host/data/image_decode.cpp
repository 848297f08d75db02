#include "data/image_decode.hpp"

#include "core/errors.hpp"

#include <ATen/ops/empty.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace ssld::host {

namespace {

bool is_jpeg(const std::vector<uint8_t>& bytes) { return bytes.size() > 3 && bytes[0] == 0xFF && bytes[1] == 0xD8; }

// libjpeg decodes a truncated file with a gray bottom and only a warning: a complete JPEG
// ends with the EOI marker (possibly followed by a little padding).
bool jpeg_complete(const std::vector<uint8_t>& bytes) {
  const size_t tail = std::min<size_t>(bytes.size(), 4096);
  for (size_t i = bytes.size() - 1; i + tail >= bytes.size() && i > 0; --i)
    if (bytes[i - 1] == 0xFF && bytes[i] == 0xD9) return true;
  return false;
}

cv::Mat imdecode(const std::vector<uint8_t>& bytes, int flags) {
  const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<uint8_t*>(bytes.data()));
  try {
    return cv::imdecode(raw, flags);
  } catch (const cv::Exception& error) {
    throw DataError(std::string("cannot be decoded: ") + error.what());
  }
}

}  // namespace

bool jpeg_size(const std::vector<uint8_t>& bytes, int& width, int& height) {
  if (!is_jpeg(bytes)) return false;
  size_t i = 2;
  while (i + 9 < bytes.size()) {
    if (bytes[i] != 0xFF) return false;
    const uint8_t marker = bytes[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    const size_t length = (size_t{bytes[i + 2]} << 8) | bytes[i + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      height = (bytes[i + 5] << 8) | bytes[i + 6];
      width = (bytes[i + 7] << 8) | bytes[i + 8];
      return width > 0 && height > 0;
    }
    i += 2 + length;
  }
  return false;
}

namespace {
uint32_t big32(const std::vector<uint8_t>& b, size_t i) {
  return (uint32_t{b[i]} << 24) | (uint32_t{b[i + 1]} << 16) | (uint32_t{b[i + 2]} << 8) | b[i + 3];
}
uint32_t little32(const std::vector<uint8_t>& b, size_t i) {
  return uint32_t{b[i]} | (uint32_t{b[i + 1]} << 8) | (uint32_t{b[i + 2]} << 16) | (uint32_t{b[i + 3]} << 24);
}
}  // namespace

bool image_size(const std::vector<uint8_t>& bytes, int64_t& width, int64_t& height) {
  int w = 0, h = 0;
  if (jpeg_size(bytes, w, h)) {
    width = w, height = h;
    return true;
  }
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 24 && std::equal(kPng, kPng + 8, bytes.begin())) {  // IHDR comes first
    width = big32(bytes, 16), height = big32(bytes, 20);
    return true;
  }
  if (bytes.size() >= 26 && bytes[0] == 'B' && bytes[1] == 'M') {  // BITMAPINFOHEADER
    width = static_cast<int32_t>(little32(bytes, 18));
    height = std::abs(static_cast<int64_t>(static_cast<int32_t>(little32(bytes, 22))));
    return true;
  }
  if (bytes.size() >= 31 && std::equal(bytes.begin(), bytes.begin() + 4, "RIFF") &&  // VP8X sizes: bytes 24-29
      std::equal(bytes.begin() + 8, bytes.begin() + 12, "WEBP")) {
    const std::string chunk(bytes.begin() + 12, bytes.begin() + 16);
    if (chunk == "VP8X") {
      width = 1 + (little32(bytes, 24) & 0xFFFFFF), height = 1 + (little32(bytes, 27) & 0xFFFFFF);
      return true;
    }
  }
  return false;
}

at::Tensor decode_image(const std::vector<uint8_t>& bytes, int64_t reduced_min_side, int64_t max_pixels) {
  if (bytes.empty()) throw DataError("is empty (0 bytes)");
  int64_t claimed_width = 0, claimed_height = 0;
  if (image_size(bytes, claimed_width, claimed_height) &&
      (claimed_width < 0 || claimed_height < 0 ||
       (claimed_height > 0 && claimed_width > max_pixels / claimed_height)))
    throw DataError("is " + std::to_string(claimed_width) + " x " + std::to_string(claimed_height) +
                    " pixels, more than max_image_pixels = " + std::to_string(max_pixels) +
                    " (a decompression bomb, or raise the source's max_image_pixels)");
  if (is_jpeg(bytes) && !jpeg_complete(bytes)) throw DataError("is a truncated JPEG (no end-of-image marker)");

  cv::Mat decoded;
  int width = 0, height = 0;
  if (reduced_min_side > 0 && jpeg_size(bytes, width, height)) {
    static constexpr std::pair<int, int> kReduced[] = {
        {8, cv::IMREAD_REDUCED_COLOR_8}, {4, cv::IMREAD_REDUCED_COLOR_4}, {2, cv::IMREAD_REDUCED_COLOR_2}};
    for (const auto& [factor, flag] : kReduced) {
      if (std::min(width, height) / factor < reduced_min_side) continue;
      decoded = imdecode(bytes, flag);
      if (!decoded.empty() && std::min(decoded.rows, decoded.cols) >= reduced_min_side) break;
      decoded.release();  // smaller than promised: decode at full size below
    }
  }
  if (decoded.empty()) decoded = imdecode(bytes, cv::IMREAD_COLOR);  // EXIF-rotated, 3-channel BGR
  if (decoded.empty()) throw DataError("cannot be decoded (corrupt, truncated or not an image)");

  at::Tensor image = at::empty({decoded.rows, decoded.cols, 3}, at::kByte);
  cv::Mat rgb(decoded.rows, decoded.cols, CV_8UC3, image.data_ptr<uint8_t>());
  cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB);
  return image;
}

at::Tensor rgb_to_grayscale(const at::Tensor& rgb) {
  const at::Tensor source = rgb.contiguous();
  at::Tensor gray = at::empty({source.size(0), source.size(1), 1}, at::kByte);
  const cv::Mat in(static_cast<int>(source.size(0)), static_cast<int>(source.size(1)), CV_8UC3, source.data_ptr<uint8_t>());
  cv::Mat out(static_cast<int>(source.size(0)), static_cast<int>(source.size(1)), CV_8UC1, gray.data_ptr<uint8_t>());
  cv::cvtColor(in, out, cv::COLOR_RGB2GRAY);
  return gray;
}

}  // namespace ssld::host
