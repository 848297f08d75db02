#include "core/errors.hpp"
#include "data/image_decode.hpp"
#include "test_support.hpp"
#include "weights/torch_file.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iostream>

using namespace ssld::host;

namespace {

// The fixtures are written by PIL once per test process (CMYK and EXIF need it).
const std::filesystem::path& fixtures() {
  static ssld::test::TempDir dir;
  static const bool made = [] {
    const std::string command = "/usr/bin/python3 " SSLD_SOURCE_DIR "/tests/unit/fixtures/make_image_fixtures.py " +
                                dir.path().string();
    return std::system(command.c_str()) == 0;
  }();
  EXPECT_TRUE(made) << "fixture generation failed (needs /usr/bin/python3 with PIL)";
  return dir.path();
}

std::vector<uint8_t> bytes_of(const std::string& name) {
  const std::string text = ssld::test::read_file(fixtures() / name);
  return std::vector<uint8_t>(text.begin(), text.end());
}

// The pixel at (y, x) as {r, g, b}.
std::vector<int> pixel(const at::Tensor& image, int64_t y, int64_t x) {
  return {image[y][x][0].item<int>(), image[y][x][1].item<int>(), image[y][x][2].item<int>()};
}

void expect_near(const std::vector<int>& actual, const std::vector<int>& expected, int tolerance = 12) {
  for (size_t c = 0; c < expected.size(); ++c) EXPECT_NEAR(actual[c], expected[c], tolerance) << "channel " << c;
}

}  // namespace

TEST(ImageDecode, RgbJpegDecodesToRgbOrder) {
  const at::Tensor image = decode_image(bytes_of("rgb.jpg"));
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{30, 40, 3}));
  expect_near(pixel(image, 2, 2), {255, 0, 0});    // red top-left
  expect_near(pixel(image, 2, 37), {0, 255, 0});   // green top-right
  expect_near(pixel(image, 27, 2), {0, 0, 255});   // blue bottom-left
}

TEST(ImageDecode, GrayscaleAndCmykJpegsBecomeRgb) {
  const at::Tensor gray = decode_image(bytes_of("gray.jpg"));
  ASSERT_EQ(gray.sizes(), (std::vector<int64_t>{30, 40, 3}));
  EXPECT_TRUE(gray.select(2, 0).equal(gray.select(2, 1)));
  const at::Tensor cmyk = decode_image(bytes_of("cmyk.jpg"));
  ASSERT_EQ(cmyk.sizes(), (std::vector<int64_t>{30, 40, 3}));
  expect_near(pixel(cmyk, 2, 2), {255, 0, 0}, 40);
  expect_near(pixel(cmyk, 27, 37), {255, 255, 255}, 40);
}

TEST(ImageDecode, ExifOrientationIsApplied) {
  const at::Tensor image = decode_image(bytes_of("exif_rotated.jpg"));
  // Orientation 6: displayed rotated 90 degrees clockwise, so 40x30 becomes 30x40 (HxW 40x30)
  // and the red top-left quadrant moves to the top-right.
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{40, 30, 3}));
  expect_near(pixel(image, 2, 27), {255, 0, 0});
}

TEST(ImageDecode, FormatComesFromContentNotName) {
  const at::Tensor image = decode_image(bytes_of("png_named.JPEG"));
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{30, 40, 3}));
  EXPECT_EQ(pixel(image, 2, 2), (std::vector<int>{255, 0, 0}));  // PNG: lossless
}

TEST(ImageDecode, BrokenFilesAreDataErrorsSayingWhy) {
  auto reason = [](const std::string& name) {
    try {
      decode_image(bytes_of(name));
    } catch (const DataError& error) {
      return std::string(error.what());
    }
    return std::string("(decoded)");
  };
  EXPECT_EQ(reason("empty.jpg"), "is empty (0 bytes)");
  EXPECT_EQ(reason("truncated.jpg"), "is a truncated JPEG (no end-of-image marker)");
  EXPECT_NE(reason("text.jpg").find("cannot be decoded"), std::string::npos);
}

TEST(ImageDecode, ReducedDecodeKeepsTheShorterSideAboveTheTarget) {
  const auto big = bytes_of("big.jpg");
  int width = 0, height = 0;
  ASSERT_TRUE(jpeg_size(big, width, height));
  EXPECT_EQ(width, 800);
  EXPECT_EQ(height, 600);
  EXPECT_EQ(decode_image(big, 100).sizes(), (std::vector<int64_t>{150, 200, 3}));  // 1/4: 150 >= 100 > 75
  EXPECT_EQ(decode_image(big, 300).sizes(), (std::vector<int64_t>{300, 400, 3}));  // 1/2
  EXPECT_EQ(decode_image(big, 500).sizes(), (std::vector<int64_t>{600, 800, 3}));  // full
  EXPECT_EQ(decode_image(big, 0).sizes(), (std::vector<int64_t>{600, 800, 3}));
  expect_near(pixel(decode_image(big, 100), 10, 10), {255, 0, 0});
}

// JPEG decoding gives PIL's pixels (what torchvision's ImageFolder loader sees): the same
// libjpeg-turbo behind OpenCV and PIL, with the same chroma upsampling, for every subsampling
// and for a real photograph.
TEST(ImageDecode, JpegsDecodeToPilsPixelsInEveryChromaSubsampling) {
  ssld::test::TempDir dir;
  const auto made = ssld::test::run_program(
      "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/pil_decode_reference.py", dir.path().string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const ssld::NamedTensors reference = read_torch_file((dir / "pil.pth").string());
  ASSERT_EQ(reference.size(), 5u);
  for (const auto& [name, want] : reference) {
    const std::string text = ssld::test::read_file(dir / (name + ".jpg"));
    const at::Tensor got = decode_image(std::vector<uint8_t>(text.begin(), text.end()));
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    const at::Tensor difference = (got.to(at::kInt) - want.to(at::kInt)).abs();
    std::cout << name << ": mean |ssld - PIL| " << difference.to(at::kDouble).mean().item<double>() << ", max "
              << difference.max().item<int>() << "\n";
    EXPECT_EQ(difference.max().item<int>(), 0) << name;
  }
}
