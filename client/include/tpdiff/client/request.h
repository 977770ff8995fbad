#ifndef TPDIFF_CLIENT_REQUEST_H_
#define TPDIFF_CLIENT_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::client {

// What `tpdiff generate` / `submit` take on the command line, before validation.
struct RequestFlags {
  std::string prompt;
  std::string negative_prompt;
  std::string model;
  uint32_t frames = 0;  // pixel frames; 0 = model default
  uint32_t height = 0;  // pixels; 0 = model default
  uint32_t width = 0;   // pixels; 0 = model default
  std::string steps;  // "10,10,10": one per stage, noisiest first; empty = model default
  uint64_t seed = 0;
  double guidance = 0;
  std::string format = "mp4";           // mp4 | webm | gif | png
  std::string preview_format = "gif";   // for previews, when wanted
  bool previews = false;
  std::string sampler = "tpdiff";       // tpdiff | vanilla
  std::string priority = "standard";    // interactive | standard | batch
  uint32_t fps = 0;
  uint32_t scale = 0;
  std::string request_id;
  absl::Duration max_queue_wait = absl::ZeroDuration();
};

// INVALID_ARGUMENT naming the flag for anything unparsable; range checks are the server's.
absl::StatusOr<tpdiff::v1::GenerateRequest> BuildRequest(const RequestFlags& flags);

absl::StatusOr<std::vector<uint32_t>> ParseStageSteps(absl::string_view text);
absl::StatusOr<tpdiff::v1::VideoFormat> ParseVideoFormat(absl::string_view name);
absl::StatusOr<tpdiff::v1::Sampler> ParseSampler(absl::string_view name);
absl::StatusOr<tpdiff::v1::Priority> ParsePriority(absl::string_view name);

// File extension for a media MIME type: "gif", "mp4", "webm", "zip"; "bin" otherwise.
std::string ExtensionForMime(absl::string_view mime);

}  // namespace tpdiff::client

#endif  // TPDIFF_CLIENT_REQUEST_H_
