#ifndef TPDIFF_MEDIA_ENCODER_H_
#define TPDIFF_MEDIA_ENCODER_H_

// Encodes RGB24 clips into the formats the API offers (MP4/H.264, WebM/VP9, looping GIF,
// a ZIP of PNG frames) with the FFmpeg C libraries, entirely in memory.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/media/video.h"

namespace tpdiff::media {

enum class OutputFormat { kMp4, kWebm, kGif, kPngFrames };

// The H.264 encoder behind MP4: x264 on the CPU, or NVIDIA's NVENC (FFmpeg's h264_nvenc),
// which encodes on the GPU's video engine and leaves the CPU cores to the sampler.
enum class H264Encoder { kLibx264, kNvenc };
// "libx264", "h264_nvenc" (FFmpeg's encoder names).
absl::string_view H264EncoderName(H264Encoder encoder);

// "video/mp4", "video/webm", "image/gif", "application/zip".
absl::string_view MimeType(OutputFormat format);
// "mp4", "webm", "gif", "png" (also the file extension).
absl::string_view FormatName(OutputFormat format);
// Inverse of FormatName (case-insensitive); INVALID_ARGUMENT "format: ..." otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

struct EncodeOptions {
  OutputFormat format = OutputFormat::kMp4;
  // Nearest-neighbour upscale factor applied to every format: 0 = AutoScaleFactor, else
  // 1..kMaxScale. MP4 then pads one edge row/column where needed, since H.264 in yuv420p
  // needs even sides; EncodedMedia reports the final size.
  int scale = 0;
  // Constant-quality level for MP4 (libx264, 0..51) and WebM (libvpx-vp9, 0..63); lower is
  // better. -1 = our default (20 for x264, 32 for VP9). GIF and PNG are not lossy in this
  // sense and ignore it.
  int crf = -1;
  // MP4 only. kNvenc's quality knob is NVENC's constant-quality level (cq, same scale).
  H264Encoder h264 = H264Encoder::kLibx264;
};

struct EncodedMedia {
  std::string mime;
  std::string bytes;
  int width = 0;  // after scaling and padding
  int height = 0;
  int frames = 0;
};

// Encodes whole clips into one format with the options it was made with.
//
// Ownership: the caller owns the encoder; Encode returns a value and keeps nothing.
// Thread safety: Encode is const and every call builds its own FFmpeg contexts, so one
// encoder may be used from many threads at once.
// Errors: INVALID_ARGUMENT naming the field for a bad Video (see ValidateVideo) or a scaled
// size beyond kMaxDimension; FFmpeg failures carry FFmpeg's message and the step that failed
// (INTERNAL, RESOURCE_EXHAUSTED for out of memory).
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual OutputFormat format() const = 0;
  virtual absl::StatusOr<EncodedMedia> Encode(const Video& video) const = 0;
};

// INVALID_ARGUMENT for options out of range; FAILED_PRECONDITION if this FFmpeg build lacks
// the encoder (libx264, libvpx-vp9, gif, png) the format needs.
absl::StatusOr<std::unique_ptr<Encoder>> MakeEncoder(const EncodeOptions& options);

// The MP4 encoder a worker chose for --video-encoder ("auto", "libx264" or "h264_nvenc").
struct H264Choice {
  H264Encoder encoder = H264Encoder::kLibx264;
  // Non-empty when "auto" fell back to libx264: why NVENC could not be used (log it once).
  std::string fallback_reason;
};

// Resolves a --video-encoder value once, at start-up. NVENC is usable only where FFmpeg has
// it and it opens (the NVIDIA driver and a GPU with a video engine), so each candidate is
// opened on a small clip: "auto" takes h264_nvenc when that works, else libx264 with
// fallback_reason set; "h264_nvenc" fails with FAILED_PRECONDITION naming `field` and
// FFmpeg's reason; an unknown name is INVALID_ARGUMENT naming `field` and the choices.
absl::StatusOr<H264Choice> ChooseH264Encoder(absl::string_view name,
                                             absl::string_view field = "video_encoder");

// MakeEncoder(options) then Encode(video), for one-off calls.
absl::StatusOr<EncodedMedia> Encode(const Video& video, const EncodeOptions& options);

}  // namespace tpdiff::media

#endif  // TPDIFF_MEDIA_ENCODER_H_
