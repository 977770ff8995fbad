#include "tpdiff/media/decoder.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ffmpeg_util.h"
#include "tpdiff/media/zip.h"

namespace tpdiff::media {
namespace {

using internal::AvPtr;
using internal::FfmpegCheck;
using internal::FfmpegError;

struct InputCloser {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
using InputPtr = std::unique_ptr<AVFormatContext, InputCloser>;

absl::StatusOr<AvPtr<AVCodecContext>> OpenDecoder(const AVCodec* codec,
                                                  const AVCodecParameters* parameters,
                                                  AVRational packet_time_base) {
  AvPtr<AVCodecContext> ctx(avcodec_alloc_context3(codec));
  if (ctx == nullptr) return absl::ResourceExhaustedError("allocating a decoder context");
  if (parameters != nullptr) {
    if (absl::Status s = FfmpegCheck(avcodec_parameters_to_context(ctx.get(), parameters),
                                     "copying stream parameters to the decoder");
        !s.ok()) {
      return s;
    }
  }
  ctx->pkt_timebase = packet_time_base;
  if (absl::Status s = FfmpegCheck(avcodec_open2(ctx.get(), codec, nullptr),
                                   absl::StrCat("opening the ", codec->name, " decoder"));
      !s.ok()) {
    return s;
  }
  return ctx;
}

// Decoding state shared by both entry points: the decoder, scratch frame and packet, and the
// RGB24 output.
struct Decoding {
  AvPtr<AVCodecContext> ctx;
  AvPtr<AVFrame> frame{av_frame_alloc()};
  AvPtr<AVPacket> packet{av_packet_alloc()};
  Video video;
  internal::RgbAppender appender{&video};

  // (Re)opens the decoder; the frames decoded so far stay.
  absl::Status Open(const AVCodec* codec, const AVCodecParameters* parameters,
                    AVRational packet_time_base) {
    if (frame == nullptr || packet == nullptr) {
      return absl::ResourceExhaustedError("allocating decoder scratch space");
    }
    auto opened = OpenDecoder(codec, parameters, packet_time_base);
    if (!opened.ok()) return opened.status();
    ctx = *std::move(opened);
    return absl::OkStatus();
  }

  absl::Status Send(const AVPacket* p) {
    return internal::SendPacketAndDrain(ctx.get(), p, frame.get(),
                                        [this](const AVFrame& f) { return appender.Append(f); });
  }
};

double StreamFps(const AVStream& stream) {
  for (AVRational r : {stream.avg_frame_rate, stream.r_frame_rate}) {
    if (r.num > 0 && r.den > 0) return av_q2d(r);
  }
  return 0.0;
}

}  // namespace

absl::StatusOr<Video> DecodeVideo(const std::string& bytes) {
  if (bytes.empty()) return absl::InvalidArgumentError("bytes: empty");
  auto input = internal::MemoryInput::Create(bytes);  // outlives the demuxer reading it
  if (!input.ok()) return input.status();
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) return absl::ResourceExhaustedError("allocating a demuxer context");
  raw->pb = (*input)->avio();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  // On failure avformat_open_input frees the context itself.
  if (absl::Status s = FfmpegCheck(avformat_open_input(&raw, nullptr, nullptr, nullptr),
                                   "bytes: reading the container");
      !s.ok()) {
    return s;
  }
  InputPtr demuxer(raw);
  if (absl::Status s = FfmpegCheck(avformat_find_stream_info(demuxer.get(), nullptr),
                                   "bytes: reading the stream parameters");
      !s.ok()) {
    return s;
  }
  const AVCodec* codec = nullptr;
  const int index = av_find_best_stream(demuxer.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (index < 0) {
    return absl::InvalidArgumentError(
        index == AVERROR_DECODER_NOT_FOUND
            ? "bytes: this FFmpeg build cannot decode the video stream"
            : absl::StrCat("bytes: no video stream in the ", demuxer->iformat->name, " data"));
  }
  const AVStream& stream = *demuxer->streams[index];
  auto decoding = std::make_unique<Decoding>();
  Decoding& d = *decoding;
  if (absl::Status s = d.Open(codec, stream.codecpar, stream.time_base); !s.ok()) return s;

  int rc = 0;
  while ((rc = av_read_frame(demuxer.get(), d.packet.get())) >= 0) {
    absl::Status s = d.packet->stream_index == index ? d.Send(d.packet.get()) : absl::OkStatus();
    av_packet_unref(d.packet.get());
    if (!s.ok()) return s;
  }
  if (rc != AVERROR_EOF) return FfmpegError(rc, "bytes: reading a packet");
  if (absl::Status s = d.Send(nullptr); !s.ok()) return s;
  if (d.video.frames == 0) return absl::InvalidArgumentError("bytes: the video has no frames");
  d.video.fps = StreamFps(stream);
  return std::move(d.video);
}

absl::StatusOr<Video> DecodePngFrames(const std::string& zip_bytes) {
  absl::StatusOr<ZipArchive> archive = ReadStoredZip(zip_bytes);
  if (!archive.ok()) return archive.status();
  std::vector<const ZipEntry*> pngs;
  for (const ZipEntry& e : archive->entries) {
    if (absl::EndsWithIgnoreCase(e.name, ".png")) pngs.push_back(&e);
  }
  if (pngs.empty()) return absl::InvalidArgumentError("bytes: the archive holds no .png entries");
  std::sort(pngs.begin(), pngs.end(),
            [](const ZipEntry* a, const ZipEntry* b) { return a->name < b->name; });

  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_PNG);
  if (codec == nullptr)
    return absl::FailedPreconditionError("this FFmpeg build has no png decoder");
  auto decoding = std::make_unique<Decoding>();
  Decoding& d = *decoding;
  for (const ZipEntry* e : pngs) {
    // A fresh decoder per image: each PNG is a file of its own, and FFmpeg 5.1's png decoder
    // fed several same-size images in a row gets every image after the first wrong (its
    // previous-row buffer for the filters is not cleared between images).
    if (absl::Status s = d.Open(codec, nullptr, AVRational{1, 1}); !s.ok()) return s;
    if (absl::Status s = FfmpegCheck(
            av_new_packet(d.packet.get(), static_cast<int>(e->data.size())), "allocating a packet");
        !s.ok()) {
      return s;
    }
    std::memcpy(d.packet->data, e->data.data(), e->data.size());
    absl::Status s = d.Send(d.packet.get());
    av_packet_unref(d.packet.get());
    if (s.ok()) s = d.Send(nullptr);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("bytes: ", e->name, ": ", s.message()));
  }
  if (d.video.frames != static_cast<int>(pngs.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes: ", pngs.size(), " PNG entries gave ", d.video.frames, " frames"));
  }
  if (absl::StartsWith(archive->comment, "fps=")) {
    d.video.fps = std::strtod(archive->comment.c_str() + 4, nullptr);
  }
  return std::move(d.video);
}

}  // namespace tpdiff::media
