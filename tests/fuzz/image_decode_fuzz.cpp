// Encoded image bytes through ssld's decode path (host/data/image_decode: format sniffing,
// OpenCV's decoders for JPEG, PNG, BMP and WebP, EXIF orientation, CMYK and gray to RGB, the
// reduced-scale JPEG decode) and jpeg_size's frame-header scan.
// Seeds: images OpenCV writes here; scripts/fuzz.sh adds the decode tests' fixtures (PIL: CMYK
// and EXIF-rotated JPEGs, PNG with alpha, palette and 16-bit images).
#include "data/image_decode.hpp"
#include "fuzz_support.hpp"
#include "tensor_checks.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <vector>

namespace ssld::fuzz {

void write_seeds(const std::filesystem::path& folder) {
  cv::Mat color(24, 40, CV_8UC3), gray(16, 16, CV_8UC1);
  cv::randu(color, 0, 255);
  cv::randu(gray, 0, 255);
  const std::vector<std::pair<std::string, const cv::Mat*>> images = {
      {".jpg", &color}, {".png", &color}, {".bmp", &color}, {".webp", &color}, {".jpg", &gray}, {".png", &gray}};
  int count = 0;
  for (const auto& [extension, image] : images) {
    std::vector<uint8_t> bytes;
    if (!cv::imencode(extension, *image, bytes)) continue;  // a codec this OpenCV lacks
    write_bytes(folder / ("opencv_" + std::to_string(count++) + extension), bytes.data(), bytes.size());
  }
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  ssld::fuzz::refuse_or_read([&] {
    int width = 0, height = 0;
    const bool jpeg = ssld::host::jpeg_size(bytes, width, height);
    ssld::fuzz::touch(ssld::host::decode_image(bytes));
    // The reduced DCT scale path, as the loader takes it for large JPEGs and a small target.
    if (jpeg) ssld::fuzz::touch(ssld::host::decode_image(bytes, 8));
  });
  return 0;
}
