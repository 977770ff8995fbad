#ifndef TPDIFF_MEDIA_DECODER_H_
#define TPDIFF_MEDIA_DECODER_H_

// Decodes encoded clips back to RGB24: used by the tests to check the encoders and by
// training to read real clips. Thread-safe (no shared state between calls).

#include <string>

#include "absl/status/statusor.h"
#include "tpdiff/media/video.h"

namespace tpdiff::media {

// Refuses to decode clips whose RGB24 pixels would exceed this many bytes (RESOURCE_EXHAUSTED).
inline constexpr size_t kMaxDecodedBytes = size_t{1} << 31;

// Decodes the first video stream of any container/codec FFmpeg can read from memory (MP4,
// WebM, GIF, ...) to RGB24, honouring the stream's colour matrix and range. fps is the
// stream's average frame rate (GIF stores delays in centiseconds, so e.g. 8 fps comes back
// as 1/0.12 s). INVALID_ARGUMENT for empty or unreadable bytes or a size change mid-stream.
absl::StatusOr<Video> DecodeVideo(const std::string& bytes);

// Decodes a ZIP of PNG frames as written by the PNG-frames encoder (stored entries, taken in
// name order) to RGB24. PNG is lossless, so the pixels are exactly those encoded. fps comes
// from the archive comment ("fps=...") the encoder writes, else 0.
absl::StatusOr<Video> DecodePngFrames(const std::string& zip_bytes);

}  // namespace tpdiff::media

#endif  // TPDIFF_MEDIA_DECODER_H_
