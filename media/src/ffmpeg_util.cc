#include "ffmpeg_util.h"

#include <algorithm>
#include <cstring>
#include <utility>

extern "C" {
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
}

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/media/decoder.h"

namespace tpdiff::media::internal {
namespace {

constexpr int kIoBufferSize = 64 * 1024;

// swscale wants the full-range flag instead of the deprecated yuvj* formats.
AVPixelFormat FoldJpegRange(AVPixelFormat format, bool* full_range) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      *full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return format;
  }
}

// Both memory files seek alike: AVSEEK_SIZE asks for the size; other seeks move *pos (past
// the end is allowed: a later write fills the gap) and return it, or a negative AVERROR.
int64_t ApplySeek(size_t* pos, size_t size, int64_t offset, int whence) {
  int64_t target = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return static_cast<int64_t>(size);
    case SEEK_SET:
      target = offset;
      break;
    case SEEK_CUR:
      target = static_cast<int64_t>(*pos) + offset;
      break;
    case SEEK_END:
      target = static_cast<int64_t>(size) + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  if (target < 0) return AVERROR(EINVAL);
  *pos = static_cast<size_t>(target);
  return target;
}

void FreeAvio(AVIOContext** avio) {
  if (*avio == nullptr) return;
  av_freep(&(*avio)->buffer);  // FFmpeg may have replaced the buffer we gave it
  avio_context_free(avio);
}

const char* PixFmtName(AVPixelFormat format) {
  const char* name = av_get_pix_fmt_name(format);
  return name != nullptr ? name : "unknown";
}

}  // namespace

absl::Status FfmpegError(int code, absl::string_view what) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof(buf));
  std::string message = absl::StrCat(what, ": ", buf);
  if (code == AVERROR_INVALIDDATA) return absl::InvalidArgumentError(message);
  if (code == AVERROR(ENOMEM)) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

absl::Status Options::Unused(absl::string_view who) const {
  if (av_dict_count(dict_) == 0) return absl::OkStatus();
  std::vector<std::string> keys;
  const AVDictionaryEntry* e = nullptr;
  while ((e = av_dict_get(dict_, "", e, AV_DICT_IGNORE_SUFFIX)) != nullptr) keys.push_back(e->key);
  return absl::InternalError(
      absl::StrCat(who, " did not recognise the options ", absl::StrJoin(keys, ", ")));
}

absl::StatusOr<AvPtr<AVFrame>> AllocFrame(int width, int height, AVPixelFormat format) {
  AvPtr<AVFrame> frame(av_frame_alloc());
  if (frame == nullptr) return absl::ResourceExhaustedError("allocating an AVFrame");
  frame->width = width;
  frame->height = height;
  frame->format = format;
  if (absl::Status s = FfmpegCheck(
          av_frame_get_buffer(frame.get(), 0),
          absl::StrCat("allocating a ", width, "x", height, " ", PixFmtName(format), " frame"));
      !s.ok()) {
    return s;
  }
  return frame;
}

void CopyRgbIntoFrame(const uint8_t* rgb, AVFrame* frame) {
  av_image_copy_plane(frame->data[0], frame->linesize[0], rgb, frame->width * 3, frame->width * 3,
                      frame->height);
}

namespace {

// The send/receive loop that encoding and decoding share; Direction names the FFmpeg calls
// and, for messages, what goes in and out.
struct Encoding {
  static int Send(AVCodecContext* c, const AVFrame* in) { return avcodec_send_frame(c, in); }
  static int Receive(AVCodecContext* c, AVPacket* out) { return avcodec_receive_packet(c, out); }
  static void Unref(AVPacket* out) { av_packet_unref(out); }
  static constexpr const char* kIn = "frame";
  static constexpr const char* kOut = "packet";
  static constexpr const char* kRole = "encoder";
};
struct Decoding {
  static int Send(AVCodecContext* c, const AVPacket* in) { return avcodec_send_packet(c, in); }
  static int Receive(AVCodecContext* c, AVFrame* out) { return avcodec_receive_frame(c, out); }
  static void Unref(AVFrame* out) { av_frame_unref(out); }
  static constexpr const char* kIn = "packet";
  static constexpr const char* kOut = "frame";
  static constexpr const char* kRole = "decoder";
};

template <typename Direction, typename In, typename Out, typename Sink>
absl::Status SendAndDrain(AVCodecContext* ctx, const In* in, Out* scratch, const Sink& sink) {
  const char* codec = ctx->codec->name;
  int rc = Direction::Send(ctx, in);
  if (rc < 0) {
    return FfmpegError(rc, in != nullptr
                               ? absl::StrCat("sending a ", Direction::kIn, " to the ", codec, " ",
                                              Direction::kRole)
                               : absl::StrCat("flushing the ", codec, " ", Direction::kRole));
  }
  while (true) {
    rc = Direction::Receive(ctx, scratch);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return absl::OkStatus();
    if (rc < 0) {
      return FfmpegError(rc, absl::StrCat("receiving a ", Direction::kOut, " from the ", codec, " ",
                                          Direction::kRole));
    }
    absl::Status s = sink(scratch);
    Direction::Unref(scratch);
    if (!s.ok()) return s;
  }
}

}  // namespace

absl::Status SendFrameAndDrain(AVCodecContext* encoder, const AVFrame* frame, AVPacket* scratch,
                               const std::function<absl::Status(AVPacket*)>& sink) {
  return SendAndDrain<Encoding>(encoder, frame, scratch, sink);
}

absl::Status SendPacketAndDrain(AVCodecContext* decoder, const AVPacket* packet, AVFrame* scratch,
                                const std::function<absl::Status(const AVFrame&)>& sink) {
  return SendAndDrain<Decoding>(decoder, packet, scratch,
                                [&sink](AVFrame* frame) { return sink(*frame); });
}

absl::Status RgbAppender::Append(const AVFrame& frame) {
  Video& v = *video_;
  if (v.frames == 0) {
    v.width = frame.width;
    v.height = frame.height;
  } else if (frame.width != v.width || frame.height != v.height) {
    return absl::InvalidArgumentError(absl::StrCat("bytes: frame ", v.frames, " is ", frame.width,
                                                   "x", frame.height, " but frame 0 was ", v.width,
                                                   "x", v.height));
  }
  if ((v.frames + 1) * v.frame_bytes() > kMaxDecodedBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("bytes: decoding more than ", v.frames, " frames of ", v.width, "x", v.height,
                     " exceeds the limit of ", kMaxDecodedBytes, " bytes of RGB24"));
  }

  bool full_range = frame.color_range == AVCOL_RANGE_JPEG;
  const AVPixelFormat format = FoldJpegRange(static_cast<AVPixelFormat>(frame.format), &full_range);
  sws_ = sws_getCachedContext(sws_, v.width, v.height, format, v.width, v.height, AV_PIX_FMT_RGB24,
                              SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr,
                              nullptr);
  if (sws_ == nullptr) {
    return absl::InternalError(
        absl::StrCat("swscale cannot convert ", PixFmtName(format), " to rgb24"));
  }
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (desc != nullptr && !(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) &&
      desc->nb_components >= 3) {
    // Without this swscale assumes BT.601 limited range, which shifts the colours of HD
    // (BT.709) and full-range clips.
    const int matrix =
        frame.colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : frame.colorspace;
    if (sws_setColorspaceDetails(sws_, sws_getCoefficients(matrix), full_range ? 1 : 0,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16) < 0) {
      return absl::InternalError(
          absl::StrCat("swscale rejected the colour details of ", PixFmtName(format)));
    }
  }
  if (rgb_ == nullptr) {
    auto rgb = AllocFrame(v.width, v.height, AV_PIX_FMT_RGB24);
    if (!rgb.ok()) return rgb.status();
    rgb_ = *std::move(rgb);
  }
  sws_scale(sws_, frame.data, frame.linesize, 0, v.height, rgb_->data, rgb_->linesize);

  v.rgb.resize((v.frames + 1) * v.frame_bytes());
  av_image_copy_plane(v.frame(v.frames), v.width * 3, rgb_->data[0], rgb_->linesize[0], v.width * 3,
                      v.height);
  ++v.frames;
  return absl::OkStatus();
}

// --- MemoryOutput ---

absl::StatusOr<std::unique_ptr<MemoryOutput>> MemoryOutput::Create() {
  std::unique_ptr<MemoryOutput> out(new MemoryOutput());
  auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferSize));
  if (buffer == nullptr) return absl::ResourceExhaustedError("allocating the output buffer");
  out->avio_ = avio_alloc_context(buffer, kIoBufferSize, /*write_flag=*/1, out.get(), nullptr,
                                  &MemoryOutput::Write, &MemoryOutput::Seek);
  if (out->avio_ == nullptr) {
    av_free(buffer);
    return absl::ResourceExhaustedError("allocating the output AVIOContext");
  }
  return out;
}

MemoryOutput::~MemoryOutput() { FreeAvio(&avio_); }

std::string MemoryOutput::Release() {
  avio_flush(avio_);
  pos_ = 0;
  return std::move(data_);
}

#if LIBAVFORMAT_VERSION_MAJOR >= 61
int MemoryOutput::Write(void* opaque, const uint8_t* buf, int size) {
#else
int MemoryOutput::Write(void* opaque, uint8_t* buf, int size) {
#endif
  auto* self = static_cast<MemoryOutput*>(opaque);
  const size_t end = self->pos_ + static_cast<size_t>(size);
  if (end > self->data_.size()) self->data_.resize(end);
  std::memcpy(self->data_.data() + self->pos_, buf, size);
  self->pos_ = end;
  return size;
}

int64_t MemoryOutput::Seek(void* opaque, int64_t offset, int whence) {
  auto* self = static_cast<MemoryOutput*>(opaque);
  return ApplySeek(&self->pos_, self->data_.size(), offset, whence);
}

// --- MemoryInput ---

absl::StatusOr<std::unique_ptr<MemoryInput>> MemoryInput::Create(const std::string& bytes) {
  std::unique_ptr<MemoryInput> in(new MemoryInput(bytes));
  auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferSize));
  if (buffer == nullptr) return absl::ResourceExhaustedError("allocating the input buffer");
  in->avio_ = avio_alloc_context(buffer, kIoBufferSize, /*write_flag=*/0, in.get(),
                                 &MemoryInput::Read, nullptr, &MemoryInput::Seek);
  if (in->avio_ == nullptr) {
    av_free(buffer);
    return absl::ResourceExhaustedError("allocating the input AVIOContext");
  }
  return in;
}

MemoryInput::~MemoryInput() { FreeAvio(&avio_); }

int MemoryInput::Read(void* opaque, uint8_t* buf, int size) {
  auto* self = static_cast<MemoryInput*>(opaque);
  const size_t left = self->bytes_.size() - std::min(self->pos_, self->bytes_.size());
  const size_t n = std::min(left, static_cast<size_t>(size));
  if (n == 0) return AVERROR_EOF;
  std::memcpy(buf, self->bytes_.data() + self->pos_, n);
  self->pos_ += n;
  return static_cast<int>(n);
}

int64_t MemoryInput::Seek(void* opaque, int64_t offset, int whence) {
  auto* self = static_cast<MemoryInput*>(opaque);
  return ApplySeek(&self->pos_, self->bytes_.size(), offset, whence);
}

}  // namespace tpdiff::media::internal
