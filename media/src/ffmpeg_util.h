#ifndef TPDIFF_MEDIA_SRC_FFMPEG_UTIL_H_
#define TPDIFF_MEDIA_SRC_FFMPEG_UTIL_H_

// The adapter between FFmpeg's C API and the rest of media/: error codes become absl::Status,
// FFmpeg objects get owners, memory stands in for files. Private to media/.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/media/video.h"

namespace tpdiff::media::internal {

// "<what>: <FFmpeg's message>". The code follows the cause: AVERROR_INVALIDDATA (bad input
// bytes) -> INVALID_ARGUMENT, ENOMEM -> RESOURCE_EXHAUSTED, anything else -> INTERNAL.
absl::Status FfmpegError(int code, absl::string_view what);
inline absl::Status FfmpegCheck(int code, absl::string_view what) {
  return code < 0 ? FfmpegError(code, what) : absl::OkStatus();
}

struct AvDeleter {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
  void operator()(AVFrame* p) const { av_frame_free(&p); }
  void operator()(AVPacket* p) const { av_packet_free(&p); }
  void operator()(SwsContext* p) const { sws_freeContext(p); }
  // Output contexts only; an input context is closed with avformat_close_input.
  void operator()(AVFormatContext* p) const { avformat_free_context(p); }
};
template <typename T>
using AvPtr = std::unique_ptr<T, AvDeleter>;

// Owns an AVDictionary of options; Unused() names what a codec or muxer did not recognise
// (our bug, not the caller's, so it is reported rather than ignored).
class Options {
 public:
  Options() = default;
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;
  ~Options() { av_dict_free(&dict_); }
  void Set(const char* key, const std::string& value) {
    av_dict_set(&dict_, key, value.c_str(), 0);
  }
  AVDictionary** get() { return &dict_; }
  absl::Status Unused(absl::string_view who) const;

 private:
  AVDictionary* dict_ = nullptr;
};

// An AVFrame with its own aligned buffers.
absl::StatusOr<AvPtr<AVFrame>> AllocFrame(int width, int height, AVPixelFormat format);

// Copies tightly packed RGB24 rows into an RGB24 AVFrame (which has padded, aligned rows).
void CopyRgbIntoFrame(const uint8_t* rgb, AVFrame* frame);

// Sends `frame` (nullptr flushes) to an encoder and passes each packet it has ready to
// `sink`; the packet is unreferenced afterwards.
absl::Status SendFrameAndDrain(AVCodecContext* encoder, const AVFrame* frame, AVPacket* scratch,
                               const std::function<absl::Status(AVPacket*)>& sink);
// Sends `packet` (nullptr flushes) to a decoder and passes each frame it has ready to `sink`.
absl::Status SendPacketAndDrain(AVCodecContext* decoder, const AVPacket* packet, AVFrame* scratch,
                                const std::function<absl::Status(const AVFrame&)>& sink);

// Converts decoded frames of any pixel format to RGB24 and appends them to a Video, honouring
// the frame's colour matrix and range. The first frame fixes the Video's size.
class RgbAppender {
 public:
  explicit RgbAppender(Video* video) : video_(video) {}
  ~RgbAppender() { sws_freeContext(sws_); }
  RgbAppender(const RgbAppender&) = delete;
  RgbAppender& operator=(const RgbAppender&) = delete;

  absl::Status Append(const AVFrame& frame);

 private:
  Video* video_;
  SwsContext* sws_ = nullptr;  // owned; sws_getCachedContext reuses it while inputs match
  AvPtr<AVFrame> rgb_;
};

// A growable, seekable in-memory file for muxers (the MP4 muxer seeks back to finish mdat and
// the WebM muxer to write cues and duration). Not movable: the AVIOContext points at it.
class MemoryOutput {
 public:
  static absl::StatusOr<std::unique_ptr<MemoryOutput>> Create();
  ~MemoryOutput();
  MemoryOutput(const MemoryOutput&) = delete;
  MemoryOutput& operator=(const MemoryOutput&) = delete;

  AVIOContext* avio() const { return avio_; }
  // Flushes FFmpeg's buffer and hands over the bytes written.
  std::string Release();

 private:
  MemoryOutput() = default;
#if LIBAVFORMAT_VERSION_MAJOR >= 61
  static int Write(void* opaque, const uint8_t* buf, int size);
#else
  static int Write(void* opaque, uint8_t* buf, int size);
#endif
  static int64_t Seek(void* opaque, int64_t offset, int whence);

  std::string data_;
  size_t pos_ = 0;
  AVIOContext* avio_ = nullptr;
};

// A read-only, seekable view of `bytes` for demuxers; `bytes` must outlive it.
class MemoryInput {
 public:
  static absl::StatusOr<std::unique_ptr<MemoryInput>> Create(const std::string& bytes);
  ~MemoryInput();
  MemoryInput(const MemoryInput&) = delete;
  MemoryInput& operator=(const MemoryInput&) = delete;

  AVIOContext* avio() const { return avio_; }

 private:
  explicit MemoryInput(const std::string& bytes) : bytes_(bytes) {}
  static int Read(void* opaque, uint8_t* buf, int size);
  static int64_t Seek(void* opaque, int64_t offset, int whence);

  const std::string& bytes_;
  size_t pos_ = 0;
  AVIOContext* avio_ = nullptr;
};

}  // namespace tpdiff::media::internal

#endif  // TPDIFF_MEDIA_SRC_FFMPEG_UTIL_H_
