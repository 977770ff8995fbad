#include "palette.h"

#include <algorithm>
#include <array>
#include <limits>
#include <unordered_set>

namespace tpdiff::media::internal {
namespace {

constexpr int kMaxColours = 256;
constexpr int kBins = 1 << 15;

uint32_t PackRgb(const uint8_t* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }
int BinOf(const uint8_t* p) { return ((p[0] >> 3) << 10) | ((p[1] >> 3) << 5) | (p[2] >> 3); }
uint32_t Opaque(uint32_t rgb) { return 0xFF000000u | rgb; }

struct Bin {
  int key = 0;
  uint64_t count = 0;
  std::array<uint64_t, 3> sum = {0, 0, 0};
  int coord(int c) const { return (key >> (10 - 5 * c)) & 31; }
};

struct Box {
  size_t begin = 0, end = 0;  // range in the bins vector
  int widest_channel = 0;
  int width = 0;  // extent along widest_channel, in 5-bit steps
};

Box MakeBox(const std::vector<Bin>& bins, size_t begin, size_t end) {
  Box box{begin, end, 0, -1};
  for (int c = 0; c < 3; ++c) {
    int lo = 31, hi = 0;
    for (size_t i = begin; i < end; ++i) {
      lo = std::min(lo, bins[i].coord(c));
      hi = std::max(hi, bins[i].coord(c));
    }
    if (hi - lo > box.width) {
      box.width = hi - lo;
      box.widest_channel = c;
    }
  }
  return box;
}

}  // namespace

Palette Palette::Build(const Video& video) {
  Palette p;
  const size_t pixels = video.rgb.size() / 3;

  std::unordered_set<uint32_t> distinct;
  for (size_t i = 0; i < pixels && distinct.size() <= kMaxColours; ++i) {
    distinct.insert(PackRgb(&video.rgb[i * 3]));
  }
  if (distinct.size() <= kMaxColours) {
    p.exact_ = true;
    p.sorted_rgb_.assign(distinct.begin(), distinct.end());
    std::sort(p.sorted_rgb_.begin(), p.sorted_rgb_.end());
    for (size_t i = 0; i < p.sorted_rgb_.size(); ++i) {
      p.argb_.push_back(Opaque(p.sorted_rgb_[i]));
    }
    return p;
  }

  // Median cut: split the box with the widest channel extent at its pixel-weighted median
  // until there are 256 boxes; each box's entry is the mean of the pixels in it.
  std::vector<Bin> histogram(kBins);
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* px = &video.rgb[i * 3];
    Bin& b = histogram[BinOf(px)];
    ++b.count;
    for (int c = 0; c < 3; ++c) b.sum[c] += px[c];
  }
  std::vector<Bin> bins;
  for (int k = 0; k < kBins; ++k) {
    if (histogram[k].count == 0) continue;
    histogram[k].key = k;
    bins.push_back(histogram[k]);
  }
  std::vector<Box> boxes = {MakeBox(bins, 0, bins.size())};
  while (boxes.size() < kMaxColours) {
    auto widest = std::max_element(boxes.begin(), boxes.end(),
                                   [](const Box& a, const Box& b) { return a.width < b.width; });
    if (widest->width <= 0) break;  // every box is a single bin
    const Box box = *widest;
    const int c = box.widest_channel;
    std::sort(bins.begin() + box.begin, bins.begin() + box.end,
              [c](const Bin& a, const Bin& b) { return a.coord(c) < b.coord(c); });
    uint64_t total = 0;
    for (size_t i = box.begin; i < box.end; ++i) total += bins[i].count;
    size_t split = box.begin + 1;
    for (uint64_t acc = bins[box.begin].count; split < box.end - 1 && acc * 2 < total; ++split) {
      acc += bins[split].count;
    }
    *widest = MakeBox(bins, box.begin, split);
    boxes.push_back(MakeBox(bins, split, box.end));
  }

  p.bin_index_.assign(kBins, 0);
  for (size_t index = 0; index < boxes.size(); ++index) {
    uint64_t count = 0;
    std::array<uint64_t, 3> sum = {0, 0, 0};
    for (size_t i = boxes[index].begin; i < boxes[index].end; ++i) {
      count += bins[i].count;
      for (int c = 0; c < 3; ++c) sum[c] += bins[i].sum[c];
    }
    uint8_t mean[3];
    for (int c = 0; c < 3; ++c) mean[c] = static_cast<uint8_t>((sum[c] + count / 2) / count);
    p.argb_.push_back(Opaque(PackRgb(mean)));
  }
  // Map every occupied bin to the nearest entry (not merely its own box's mean, which can be
  // farther away for bins at a box's edge).
  for (const Bin& b : bins) {
    int best = 0;
    int64_t best_d = std::numeric_limits<int64_t>::max();
    for (size_t index = 0; index < p.argb_.size(); ++index) {
      int64_t d = 0;
      for (int c = 0; c < 3; ++c) {
        const int64_t mean = static_cast<int64_t>((b.sum[c] + b.count / 2) / b.count);
        const int64_t entry = (p.argb_[index] >> (16 - 8 * c)) & 0xFF;
        d += (mean - entry) * (mean - entry);
      }
      if (d < best_d) {
        best_d = d;
        best = static_cast<int>(index);
      }
    }
    p.bin_index_[b.key] = static_cast<uint8_t>(best);
  }
  return p;
}

uint8_t Palette::Index(const uint8_t* rgb) const {
  if (!exact_) return bin_index_[BinOf(rgb)];
  auto it = std::lower_bound(sorted_rgb_.begin(), sorted_rgb_.end(), PackRgb(rgb));
  if (it == sorted_rgb_.end()) --it;  // not a colour of the clip: any entry will do
  return static_cast<uint8_t>(it - sorted_rgb_.begin());  // argb_ follows sorted_rgb_
}

}  // namespace tpdiff::media::internal
