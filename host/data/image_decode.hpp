// Decoding of encoded image files (JPEG, PNG, BMP, WebP) with OpenCV into RGB uint8 HWC
// tensors: EXIF orientation applied, CMYK and grayscale converted to RGB, the format sniffed
// from the content (a PNG named .JPEG decodes), and JPEGs decoded at a reduced DCT scale when
// the image is much larger than needed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace ssld::host {

// `reduced_min_side` > 0 allows decoding a JPEG at 1/2, 1/4 or 1/8 scale as long as its shorter
// side stays >= reduced_min_side (the decoded size is checked, not assumed). Throws DataError
// (without the path; the caller adds it) for an empty, truncated, corrupt or non-image file.
// An image whose header claims more than `max_pixels` (PIL's default bound: a decompression
// bomb, e.g. a 389 KB PNG of 20000 x 20000) is refused before its pixels are decoded.
constexpr int64_t kDefaultMaxImagePixels = 89'478'485;
at::Tensor decode_image(const std::vector<uint8_t>& bytes, int64_t reduced_min_side = 0,
                        int64_t max_pixels = kDefaultMaxImagePixels);

// One channel (luma, as OpenCV's RGB2GRAY) of a uint8 RGB HWC image; exact for gray pixels.
at::Tensor rgb_to_grayscale(const at::Tensor& rgb);

// Width and height from a JPEG's frame header without decoding it; false if not found.
bool jpeg_size(const std::vector<uint8_t>& bytes, int& width, int& height);

// Width and height from the header of a JPEG, PNG, BMP or WebP; false for other content.
bool image_size(const std::vector<uint8_t>& bytes, int64_t& width, int64_t& height);

}  // namespace ssld::host
