#ifndef TPDIFF_MEDIA_SRC_PALETTE_H_
#define TPDIFF_MEDIA_SRC_PALETTE_H_

// One 256-colour palette for a whole clip (GIF frames are paletted; one palette for all frames
// avoids colour flicker between frames). Private to media/.

#include <cstdint>
#include <vector>

#include "tpdiff/media/video.h"

namespace tpdiff::media::internal {

class Palette {
 public:
  // Exact when the clip has at most 256 distinct colours (synthetic and flat-shaded clips
  // then round-trip losslessly); otherwise median cut over a 5-bit-per-channel histogram.
  static Palette Build(const Video& video);

  // Entries as FFmpeg's PAL8 wants them: 0xAARRGGBB in native byte order, opaque.
  const std::vector<uint32_t>& argb() const { return argb_; }
  // Index of the entry for an RGB pixel. Defined for the colours of the clip the palette was
  // built from (or any colour when exact()==false, mapped through its histogram bin).
  uint8_t Index(const uint8_t* rgb) const;
  bool exact() const { return exact_; }

 private:
  bool exact_ = false;
  std::vector<uint32_t> argb_;
  std::vector<uint32_t> sorted_rgb_;  // exact: 0x00RRGGBB ascending, in palette order
  std::vector<uint8_t> bin_index_;    // median cut: 32768 bins -> palette index
};

}  // namespace tpdiff::media::internal

#endif  // TPDIFF_MEDIA_SRC_PALETTE_H_
