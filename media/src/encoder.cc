#include "tpdiff/media/encoder.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

extern "C" {
#include <libavutil/mathematics.h>
#include <libavutil/rational.h>
}

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ffmpeg_util.h"
#include "palette.h"
#include "tpdiff/media/zip.h"

namespace tpdiff::media {
namespace {

using internal::AvPtr;
using internal::FfmpegCheck;
using internal::FfmpegError;

// What each format needs from FFmpeg.
struct FormatSpec {
  OutputFormat format;
  const char* name;
  const char* mime;
  const char* muxer;  // nullptr: PNG frames go into a ZIP we write ourselves
  const char* codec;
  AVPixelFormat pix_fmt;
  bool even_sides;  // H.264 in 4:2:0 rejects odd widths and heights
  int default_crf;  // -1: the codec has no constant-quality knob
  int max_crf;
};

constexpr FormatSpec kSpecs[] = {
    {OutputFormat::kMp4, "mp4", "video/mp4", "mp4", "libx264", AV_PIX_FMT_YUV420P, true, 20, 51},
    {OutputFormat::kWebm, "webm", "video/webm", "webm", "libvpx-vp9", AV_PIX_FMT_YUV420P, false, 32,
     63},
    {OutputFormat::kGif, "gif", "image/gif", "gif", "gif", AV_PIX_FMT_PAL8, false, -1, -1},
    {OutputFormat::kPngFrames, "png", "application/zip", nullptr, "png", AV_PIX_FMT_RGB24, false,
     -1, -1},
};

const FormatSpec& SpecFor(OutputFormat format) {
  for (const FormatSpec& spec : kSpecs) {
    if (spec.format == format) return spec;
  }
  return kSpecs[0];  // unreachable for valid enum values
}

// The FFmpeg encoder of `spec` under `options`: MP4 may use NVENC instead of x264.
const char* CodecName(const FormatSpec& spec, const EncodeOptions& options) {
  if (spec.format == OutputFormat::kMp4 && options.h264 == H264Encoder::kNvenc) {
    return "h264_nvenc";
  }
  return spec.codec;
}

absl::StatusOr<const AVCodec*> FindEncoder(const FormatSpec& spec, const char* name) {
  const AVCodec* codec = avcodec_find_encoder_by_name(name);
  if (codec == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("this FFmpeg build has no ", name, " encoder (needed for ", spec.name, ")"));
  }
  return codec;
}

// Scales (and, where the codec needs it, pads by repeating the last row/column) the clip.
absl::StatusOr<Video> Prepare(const Video& video, int scale, bool even_sides) {
  if (absl::Status s = ValidateVideo(video); !s.ok()) return s;
  const int factor = scale == 0 ? AutoScaleFactor(video.height, video.width) : scale;
  if (static_cast<int64_t>(video.height) * factor > kMaxDimension ||
      static_cast<int64_t>(video.width) * factor > kMaxDimension) {
    return absl::InvalidArgumentError(absl::StrCat("scale: ", factor, " makes ", video.height, "x",
                                                   video.width, " exceed ", kMaxDimension,
                                                   " pixels on a side"));
  }
  Video out = UpscaleNearest(video, factor);
  if (!even_sides || (out.height % 2 == 0 && out.width % 2 == 0)) return out;

  Video padded =
      Video::Blank(out.frames, out.height + out.height % 2, out.width + out.width % 2, out.fps);
  for (int f = 0; f < out.frames; ++f) {
    for (int y = 0; y < padded.height; ++y) {
      const uint8_t* src = out.pixel(f, std::min(y, out.height - 1), 0);
      uint8_t* dst = padded.frame(f) + static_cast<size_t>(y) * padded.width * 3;
      std::copy(src, src + out.width * 3, dst);
      if (padded.width > out.width)
        std::copy(src + (out.width - 1) * 3, src + out.width * 3, dst + out.width * 3);
    }
  }
  return padded;
}

// A time base that represents the frame rate exactly for the rates people use (2, 4, 24,
// 30000/1001, ...): frame i has pts i in 1/rate.
AVRational FrameRate(double fps) { return av_d2q(fps, 100000); }

absl::StatusOr<AvPtr<AVCodecContext>> OpenEncoder(const FormatSpec& spec,
                                                  const EncodeOptions& encode_options,
                                                  const Video& video, bool global_header) {
  const char* codec_name = CodecName(spec, encode_options);
  const int crf = encode_options.crf;
  absl::StatusOr<const AVCodec*> found = FindEncoder(spec, codec_name);
  if (!found.ok()) return found.status();
  const AVCodec* codec = *found;
  AvPtr<AVCodecContext> ctx(avcodec_alloc_context3(codec));
  if (ctx == nullptr) return absl::ResourceExhaustedError("allocating an encoder context");
  const AVRational rate = FrameRate(video.fps);
  ctx->width = video.width;
  ctx->height = video.height;
  ctx->pix_fmt = spec.pix_fmt;
  ctx->framerate = rate;
  ctx->time_base = av_inv_q(rate);
  // Demote the encoder's chatter by one level: x264's per-clip statistics are INFO and would
  // fill the worker's log; warnings still show (as INFO).
  ctx->log_level_offset = AV_LOG_VERBOSE - AV_LOG_INFO;
  if (global_header) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (spec.pix_fmt == AV_PIX_FMT_YUV420P) {
    // Tag what FrameFiller produces, so players and our decoder invert the same matrix.
    ctx->color_range = AVCOL_RANGE_MPEG;
    ctx->colorspace = AVCOL_SPC_BT709;
    ctx->color_primaries = AVCOL_PRI_BT709;
    ctx->color_trc = AVCOL_TRC_BT709;
  }

  internal::Options options;
  const int quality = crf >= 0 ? crf : spec.default_crf;
  if (spec.format == OutputFormat::kMp4 && encode_options.h264 == H264Encoder::kNvenc) {
    ctx->bit_rate = 0;  // constant quality alone, as x264's crf
    options.Set("preset", "p2");  // NVENC's second-fastest; latency-bound like x264's
    options.Set("rc", "vbr");
    options.Set("cq", std::to_string(quality));
  } else if (spec.format == OutputFormat::kMp4) {
    options.Set("preset", "veryfast");  // previews are latency-bound; crf holds the quality
    options.Set("crf", std::to_string(quality));
  } else if (spec.format == OutputFormat::kWebm) {
    ctx->bit_rate = 0;  // constant quality: libvpx needs b=0 for crf alone
    options.Set("crf", std::to_string(quality));
    options.Set("deadline", "good");
    options.Set("cpu-used", "5");  // libvpx's default (1) is many times slower for little gain
    options.Set("row-mt", "1");
  }
  if (absl::Status s =
          FfmpegCheck(avcodec_open2(ctx.get(), codec, options.get()),
                      absl::StrCat("opening the ", codec_name, " encoder for ", video.width, "x",
                                   video.height, " at ", rate.num, "/", rate.den, " fps"));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = options.Unused(codec_name); !s.ok()) return s;
  return ctx;
}

// Produces the encoder's input frames from the prepared RGB clip.
class FrameFiller {
 public:
  static absl::StatusOr<std::unique_ptr<FrameFiller>> Create(const FormatSpec& spec,
                                                             const Video& video) {
    auto filler = std::make_unique<FrameFiller>(video);
    auto frame = internal::AllocFrame(video.width, video.height, spec.pix_fmt);
    if (!frame.ok()) return frame.status();
    filler->frame_ = *std::move(frame);
    if (spec.pix_fmt == AV_PIX_FMT_PAL8) {
      filler->palette_ = internal::Palette::Build(video);
    } else if (spec.pix_fmt != AV_PIX_FMT_RGB24) {
      auto rgb = internal::AllocFrame(video.width, video.height, AV_PIX_FMT_RGB24);
      if (!rgb.ok()) return rgb.status();
      filler->rgb_ = *std::move(rgb);
      filler->sws_.reset(sws_getContext(video.width, video.height, AV_PIX_FMT_RGB24, video.width,
                                        video.height, spec.pix_fmt, SWS_BICUBIC | SWS_ACCURATE_RND,
                                        nullptr, nullptr, nullptr));
      if (filler->sws_ == nullptr) {
        return absl::InternalError("swscale cannot convert rgb24 to the encoder's format");
      }
      // Full-range RGB in, BT.709 limited-range YUV out, as OpenEncoder tags the stream.
      if (sws_setColorspaceDetails(filler->sws_.get(), sws_getCoefficients(SWS_CS_DEFAULT), 1,
                                   sws_getCoefficients(SWS_CS_ITU709), 0, 0, 1 << 16,
                                   1 << 16) < 0) {
        return absl::InternalError("swscale rejected the BT.709 conversion");
      }
    }
    return filler;
  }

  explicit FrameFiller(const Video& video) : video_(video) {}

  // Frame i in the encoder's format, pts i. Valid until the next call.
  absl::StatusOr<const AVFrame*> Fill(int i) {
    AVFrame* f = frame_.get();
    // The encoder may still hold a reference to the previous frame's buffers.
    if (absl::Status s = FfmpegCheck(av_frame_make_writable(f), "making a frame writable");
        !s.ok()) {
      return s;
    }
    const uint8_t* rgb = video_.frame(i);
    if (palette_.has_value()) {
      for (int y = 0; y < video_.height; ++y) {
        uint8_t* row = f->data[0] + static_cast<size_t>(y) * f->linesize[0];
        for (int x = 0; x < video_.width; ++x) row[x] = palette_->Index(video_.pixel(i, y, x));
      }
      std::vector<uint32_t> entries = palette_->argb();
      entries.resize(256, 0xFF000000u);
      std::memcpy(f->data[1], entries.data(), 256 * sizeof(uint32_t));
    } else if (sws_ != nullptr) {
      internal::CopyRgbIntoFrame(rgb, rgb_.get());
      sws_scale(sws_.get(), rgb_->data, rgb_->linesize, 0, video_.height, f->data, f->linesize);
    } else {
      internal::CopyRgbIntoFrame(rgb, f);
    }
    f->pts = i;
    return f;
  }

 private:
  const Video& video_;
  AvPtr<AVFrame> frame_;
  AvPtr<AVFrame> rgb_;
  AvPtr<SwsContext> sws_;
  std::optional<internal::Palette> palette_;
};

// Encodes every frame of `video`, then flushes; `sink` gets each packet.
absl::Status EncodeAll(const FormatSpec& spec, const Video& video, AVCodecContext* ctx,
                       const std::function<absl::Status(AVPacket*)>& sink) {
  auto filler = FrameFiller::Create(spec, video);
  if (!filler.ok()) return filler.status();
  AvPtr<AVPacket> packet(av_packet_alloc());
  if (packet == nullptr) return absl::ResourceExhaustedError("allocating an AVPacket");
  for (int i = 0; i < video.frames; ++i) {
    auto frame = (*filler)->Fill(i);
    if (!frame.ok()) return frame.status();
    if (absl::Status s = internal::SendFrameAndDrain(ctx, *frame, packet.get(), sink); !s.ok()) {
      return s;
    }
  }
  return internal::SendFrameAndDrain(ctx, nullptr, packet.get(), sink);
}

EncodedMedia MakeResult(const FormatSpec& spec, const Video& video, std::string bytes) {
  return EncodedMedia{spec.mime, std::move(bytes), video.width, video.height, video.frames};
}

// MP4, WebM and GIF: one codec, one muxer writing into memory.
class ContainerEncoder : public Encoder {
 public:
  ContainerEncoder(const FormatSpec& spec, const EncodeOptions& options)
      : spec_(spec), options_(options) {}
  OutputFormat format() const override { return spec_.format; }

  absl::StatusOr<EncodedMedia> Encode(const Video& input) const override {
    auto video = Prepare(input, options_.scale, spec_.even_sides);
    if (!video.ok()) return video.status();

    auto output = internal::MemoryOutput::Create();  // outlives the muxer that writes to it
    if (!output.ok()) return output.status();
    AVFormatContext* raw = nullptr;
    if (absl::Status s =
            FfmpegCheck(avformat_alloc_output_context2(&raw, nullptr, spec_.muxer, nullptr),
                        absl::StrCat("creating the ", spec_.muxer, " muxer"));
        !s.ok()) {
      return s;
    }
    AvPtr<AVFormatContext> muxer(raw);
    muxer->pb = (*output)->avio();
    muxer->flags |= AVFMT_FLAG_CUSTOM_IO;

    auto encoder =
        OpenEncoder(spec_, options_, *video, (muxer->oformat->flags & AVFMT_GLOBALHEADER) != 0);
    if (!encoder.ok()) return encoder.status();
    AVCodecContext* ctx = encoder->get();
    AVStream* stream = avformat_new_stream(muxer.get(), nullptr);
    if (stream == nullptr) return absl::ResourceExhaustedError("adding a stream to the muxer");
    if (absl::Status s = FfmpegCheck(avcodec_parameters_from_context(stream->codecpar, ctx),
                                     "copying encoder parameters to the stream");
        !s.ok()) {
      return s;
    }
    stream->time_base = ctx->time_base;  // a hint; the muxer may choose its own
    stream->avg_frame_rate = ctx->framerate;

    internal::Options muxer_options;
    if (spec_.format == OutputFormat::kGif) muxer_options.Set("loop", "0");  // forever
    if (absl::Status s = FfmpegCheck(avformat_write_header(muxer.get(), muxer_options.get()),
                                     absl::StrCat("writing the ", spec_.muxer, " header"));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = muxer_options.Unused(spec_.muxer); !s.ok()) return s;

    absl::Status encoded = EncodeAll(spec_, *video, ctx, [&](AVPacket* packet) {
      if (packet->duration == 0) packet->duration = 1;  // one frame, in ctx->time_base
      av_packet_rescale_ts(packet, ctx->time_base, stream->time_base);
      packet->stream_index = stream->index;
      return FfmpegCheck(av_interleaved_write_frame(muxer.get(), packet),
                         absl::StrCat("writing a packet to the ", spec_.muxer, " muxer"));
    });
    if (!encoded.ok()) return encoded;
    if (absl::Status s = FfmpegCheck(av_write_trailer(muxer.get()),
                                     absl::StrCat("finishing the ", spec_.muxer, " file"));
        !s.ok()) {
      return s;
    }
    return MakeResult(spec_, *video, (*output)->Release());
  }

 private:
  const FormatSpec& spec_;
  const EncodeOptions options_;
};

// A stored ZIP of frame_000.png, frame_001.png, ...; the archive comment records the fps.
class PngFramesEncoder : public Encoder {
 public:
  explicit PngFramesEncoder(const EncodeOptions& options)
      : spec_(SpecFor(OutputFormat::kPngFrames)), options_(options) {}
  OutputFormat format() const override { return OutputFormat::kPngFrames; }

  absl::StatusOr<EncodedMedia> Encode(const Video& input) const override {
    auto video = Prepare(input, options_.scale, spec_.even_sides);
    if (!video.ok()) return video.status();
    auto encoder = OpenEncoder(spec_, options_, *video, /*global_header=*/false);
    if (!encoder.ok()) return encoder.status();

    const int digits = std::max<int>(3, std::to_string(video->frames - 1).size());
    ZipArchive archive;
    absl::Status encoded = EncodeAll(spec_, *video, encoder->get(), [&](AVPacket* packet) {
      char name[32];
      std::snprintf(name, sizeof(name), "frame_%0*d.png", digits,
                    static_cast<int>(archive.entries.size()));
      archive.entries.push_back(
          {name, std::string(reinterpret_cast<const char*>(packet->data), packet->size)});
      return absl::OkStatus();
    });
    if (!encoded.ok()) return encoded;
    if (static_cast<int>(archive.entries.size()) != video->frames) {
      return absl::InternalError(absl::StrCat("the png encoder returned ", archive.entries.size(),
                                              " images for ", video->frames, " frames"));
    }
    char comment[48];
    std::snprintf(comment, sizeof(comment), "fps=%.10g", video->fps);
    archive.comment = comment;
    auto zip = WriteStoredZip(archive);
    if (!zip.ok()) return zip.status();
    return MakeResult(spec_, *video, *std::move(zip));
  }

 private:
  const FormatSpec& spec_;
  const EncodeOptions options_;
};

}  // namespace

absl::string_view MimeType(OutputFormat format) { return SpecFor(format).mime; }
absl::string_view FormatName(OutputFormat format) { return SpecFor(format).name; }

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const FormatSpec& spec : kSpecs) {
    if (lower == spec.name) return spec.format;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("format: \"", name, "\" is not one of mp4, webm, gif, png"));
}

absl::StatusOr<std::unique_ptr<Encoder>> MakeEncoder(const EncodeOptions& options) {
  const FormatSpec& spec = SpecFor(options.format);
  if (spec.format != options.format) {
    return absl::InvalidArgumentError(
        absl::StrCat("format: ", static_cast<int>(options.format), " is not an OutputFormat"));
  }
  if (options.scale < 0 || options.scale > kMaxScale) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale: ", options.scale, " must be in [0, ", kMaxScale, "] (0 = auto)"));
  }
  if (options.crf < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("crf: ", options.crf, " must be -1 (codec default) or >= 0"));
  }
  if (spec.max_crf >= 0 && options.crf > spec.max_crf) {
    return absl::InvalidArgumentError(absl::StrCat("crf: ", options.crf, " exceeds ", spec.codec,
                                                   "'s maximum of ", spec.max_crf));
  }
  if (absl::StatusOr<const AVCodec*> codec = FindEncoder(spec, CodecName(spec, options));
      !codec.ok()) {
    return codec.status();
  }
  if (options.format == OutputFormat::kPngFrames) {
    return std::make_unique<PngFramesEncoder>(options);
  }
  return std::make_unique<ContainerEncoder>(spec, options);
}

absl::string_view H264EncoderName(H264Encoder encoder) {
  return encoder == H264Encoder::kNvenc ? "h264_nvenc" : "libx264";
}

absl::StatusOr<H264Choice> ChooseH264Encoder(absl::string_view name, absl::string_view field) {
  const bool is_auto = name == "auto";
  if (!is_auto && name != H264EncoderName(H264Encoder::kLibx264) &&
      name != H264EncoderName(H264Encoder::kNvenc)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", name, "\" is not one of auto, libx264, h264_nvenc"));
  }
  // One small clip through the encoder: NVENC loads the driver and claims a session only when
  // it opens. 256x256 is above every NVENC generation's minimum frame size.
  auto works = [](H264Encoder encoder) {
    EncodeOptions options;
    options.format = OutputFormat::kMp4;
    options.scale = 1;
    options.h264 = encoder;
    return Encode(Video::Blank(2, 256, 256, 8), options).status();
  };
  H264Choice choice;
  if (is_auto || name == H264EncoderName(H264Encoder::kNvenc)) {
    const absl::Status nvenc = works(H264Encoder::kNvenc);
    if (nvenc.ok()) {
      choice.encoder = H264Encoder::kNvenc;
      return choice;
    }
    if (!is_auto) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, "=h264_nvenc: NVENC cannot encode here (", nvenc.message(),
                       "); use ", field, "=auto or ", field, "=libx264"));
    }
    choice.fallback_reason = std::string(nvenc.message());
  }
  if (absl::Status x264 = works(H264Encoder::kLibx264); !x264.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": libx264 cannot encode here (", x264.message(), ")"));
  }
  return choice;
}

absl::StatusOr<EncodedMedia> Encode(const Video& video, const EncodeOptions& options) {
  auto encoder = MakeEncoder(options);
  if (!encoder.ok()) return encoder.status();
  return (*encoder)->Encode(video);
}

}  // namespace tpdiff::media
