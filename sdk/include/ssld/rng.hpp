// The one random number scheme of ssld: a counter-based generator (Philox4x32-10, Salmon et al.
// 2011). A stream is a pure function of (run seed, epoch, sample id, purpose), so augmentations
// draw the same numbers whatever thread runs them, in whatever order, and after a resume.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace ssld {

class Rng {
 public:
  // `purpose` separates streams of different consumers of the same sample (hash a name with
  // Rng::purpose_of, e.g. "augment.0.random_resized_crop").
  Rng(uint64_t seed, uint64_t epoch, uint64_t sample_id, uint64_t purpose)
      : key_{static_cast<uint32_t>(mix(seed ^ mix(purpose))), static_cast<uint32_t>(mix(seed ^ mix(purpose)) >> 32)},
        counter_{static_cast<uint32_t>(sample_id), static_cast<uint32_t>(sample_id >> 32),
                 static_cast<uint32_t>(epoch), 0} {}

  // FNV-1a: a stable 64-bit id for a purpose name (not std::hash, which may differ by build).
  static constexpr uint64_t purpose_of(std::string_view name) {
    uint64_t hash = 14695981039346656037ull;
    for (char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return hash;
  }

  uint32_t next_u32() {
    if (used_ == 4) refill();
    return block_[used_++];
  }
  uint64_t next_u64() { return (static_cast<uint64_t>(next_u32()) << 32) | next_u32(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  // Uniform integer in [low, high), unbiased (rejection sampling).
  int64_t randint(int64_t low, int64_t high) {
    const uint64_t range = static_cast<uint64_t>(high - low);
    if (range <= 1) return low;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t draw = next_u64();
    while (draw >= limit) draw = next_u64();
    return low + static_cast<int64_t>(draw % range);
  }
  bool bernoulli(double p) { return uniform() < p; }
  // Box-Muller; spends two uniforms per draw so the stream position is easy to reason about.
  double normal(double mean = 0.0, double stddev = 1.0) {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 // The Philox4x32-10 bijection (Random123's philox4x32_R(10, ...)), exposed for its
  // known-answer test.
  static std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> x, std::array<uint32_t, 2> k) {
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k[0] += 0x9E3779B9u;
        k[1] += 0xBB67AE85u;
      }
      const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * x[0];
      const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * x[2];
      x = {static_cast<uint32_t>(p1 >> 32) ^ x[1] ^ k[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ x[3] ^ k[1], static_cast<uint32_t>(p0)};
    }
    return x;
  }

 private:
  static constexpr uint64_t mix(uint64_t x) {  // splitmix64 finalizer
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }

  void refill() {
    block_ = philox4x32(counter_, key_);
    used_ = 0;
    ++counter_[3];
  }

  std::array<uint32_t, 2> key_;
  std::array<uint32_t, 4> counter_;
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
};

}  // namespace ssld
