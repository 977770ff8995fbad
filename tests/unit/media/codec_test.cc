// Encoders checked by decoding their output with FFmpeg: frame count, size, fps and colours.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tpdiff/media/decoder.h"
#include "tpdiff/media/encoder.h"
#include "tpdiff/media/zip.h"

namespace tpdiff::media {
namespace {

constexpr uint8_t kBackground[3] = {40, 90, 160};
constexpr uint8_t kSquare[3] = {230, 200, 30};
constexpr int kSquareSide = 8;

// A kSquareSide square moving diagonally 2 px a frame over a flat background: two colours,
// large flat areas and real motion between frames.
Video MovingSquare(int frames, int height, int width, double fps) {
  Video v = Video::Blank(frames, height, width, fps);
  for (int f = 0; f < frames; ++f) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int x0 = (2 * f) % (width - kSquareSide + 1);
        const int y0 = (2 * f) % (height - kSquareSide + 1);
        const bool in = x >= x0 && x < x0 + kSquareSide && y >= y0 && y < y0 + kSquareSide;
        std::copy(in ? kSquare : kBackground, (in ? kSquare : kBackground) + 3,
                  v.frame(f) + (static_cast<size_t>(y) * width + x) * 3);
      }
    }
  }
  return v;
}

// A smooth gradient that changes every frame: thousands of colours, for GIF's median cut.
Video Gradient(int frames, int height, int width, double fps) {
  Video v = Video::Blank(frames, height, width, fps);
  for (int f = 0; f < frames; ++f) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        uint8_t* p = v.frame(f) + (static_cast<size_t>(y) * width + x) * 3;
        p[0] = static_cast<uint8_t>(x * 255 / (width - 1));
        p[1] = static_cast<uint8_t>(y * 255 / (height - 1));
        p[2] = static_cast<uint8_t>((x + y + 16 * f) % 256);
      }
    }
  }
  return v;
}

struct Errors {
  double mean = 0;  // mean absolute error per channel over all pixels
  int max = 0;
};

Errors Compare(const Video& got, const Video& want) {
  Errors e;
  double sum = 0;
  for (size_t i = 0; i < want.rgb.size(); ++i) {
    const int d = std::abs(int{got.rgb[i]} - int{want.rgb[i]});
    sum += d;
    e.max = std::max(e.max, d);
  }
  e.mean = sum / want.rgb.size();
  return e;
}

// Worst channel error at the square's centre and at the background pixel farthest from it,
// in every frame: flat areas, where a lossy codec at a sane quality must be near exact.
int FlatAreaError(const Video& got, const Video& want, int scale) {
  int worst = 0;
  for (int f = 0; f < want.frames; ++f) {
    const int x0 = (2 * f) % (want.width / scale - kSquareSide + 1);
    const int y0 = (2 * f) % (want.height / scale - kSquareSide + 1);
    const int cy = (y0 + kSquareSide / 2) * scale, cx = (x0 + kSquareSide / 2) * scale;
    const int by = cy < want.height / 2 ? want.height - 1 : 0;
    const int bx = cx < want.width / 2 ? want.width - 1 : 0;
    for (auto [y, x] : {std::pair{cy, cx}, std::pair{by, bx}}) {
      for (int c = 0; c < 3; ++c) {
        worst = std::max(worst, std::abs(int{got.pixel(f, y, x)[c]} - int{want.pixel(f, y, x)[c]}));
      }
    }
  }
  return worst;
}

EncodedMedia MustEncodeWith(const Video& v, const EncodeOptions& options) {
  auto media = Encode(v, options);
  EXPECT_TRUE(media.ok()) << media.status();
  return media.ok() ? *std::move(media) : EncodedMedia{};
}

EncodedMedia MustEncode(const Video& v, OutputFormat format, int scale = 0) {
  EncodeOptions options;
  options.format = format;
  options.scale = scale;
  return MustEncodeWith(v, options);
}

Video MustDecode(const EncodedMedia& media) {
  auto video =
      media.mime == "application/zip" ? DecodePngFrames(media.bytes) : DecodeVideo(media.bytes);
  EXPECT_TRUE(video.ok()) << video.status();
  return video.ok() ? *std::move(video) : Video{};
}

TEST(EncoderTest, ThisFfmpegHasEveryEncoder) {
  for (OutputFormat f :
       {OutputFormat::kMp4, OutputFormat::kWebm, OutputFormat::kGif, OutputFormat::kPngFrames}) {
    EncodeOptions options;
    options.format = f;
    auto encoder = MakeEncoder(options);
    ASSERT_TRUE(encoder.ok()) << FormatName(f) << ": " << encoder.status();
    EXPECT_EQ((*encoder)->format(), f);
    EXPECT_EQ(*ParseOutputFormat(FormatName(f)), f);
  }
  EXPECT_EQ(MimeType(OutputFormat::kMp4), "video/mp4");
  EXPECT_EQ(MimeType(OutputFormat::kWebm), "video/webm");
  EXPECT_EQ(MimeType(OutputFormat::kGif), "image/gif");
  EXPECT_EQ(MimeType(OutputFormat::kPngFrames), "application/zip");
  EXPECT_EQ(*ParseOutputFormat("MP4"), OutputFormat::kMp4);
  EXPECT_EQ(ParseOutputFormat("avi").status().code(), absl::StatusCode::kInvalidArgument);
}

// Lossy formats: 32x32 is auto-scaled by 8 to 256x256, so the square is 64x64 px and its
// centre is 32 px from any edge, beyond the reach of 4:2:0 chroma bleeding and block ringing.
// There the only error left is RGB->YUV->RGB rounding in 8-bit limited range (~1 level) plus
// quantisation, which flat blocks barely suffer at these crf values (measured: 1 level), so 6
// levels bounds it with margin. The whole-frame mean includes the blurred square edges
// (measured: 0.9 levels for both codecs).
struct LossyCase {
  OutputFormat format;
  const char* container_magic;  // MP4: "ftyp" at offset 4; WebM: EBML id at 0
  size_t magic_offset;
};

class LossyRoundTripTest : public ::testing::TestWithParam<LossyCase> {};

TEST_P(LossyRoundTripTest, DecodesToTheSameClip) {
  const Video input = MovingSquare(12, 32, 32, 8.0);
  const EncodedMedia media = MustEncode(input, GetParam().format);
  EXPECT_EQ(media.mime, MimeType(GetParam().format));
  EXPECT_EQ(media.width, 256);
  EXPECT_EQ(media.height, 256);
  EXPECT_EQ(media.frames, 12);
  const std::string magic = GetParam().container_magic;
  EXPECT_EQ(media.bytes.substr(GetParam().magic_offset, magic.size()), magic);

  const Video decoded = MustDecode(media);
  ASSERT_EQ(decoded.frames, 12);
  ASSERT_EQ(decoded.height, 256);
  ASSERT_EQ(decoded.width, 256);
  EXPECT_NEAR(decoded.fps, 8.0, 1e-3);
  const Video want = UpscaleNearest(input, 8);
  EXPECT_LE(FlatAreaError(decoded, want, 8), 6);
  EXPECT_LT(Compare(decoded, want).mean, 2.0);
}

INSTANTIATE_TEST_SUITE_P(Formats, LossyRoundTripTest,
                         ::testing::Values(LossyCase{OutputFormat::kMp4, "ftyp", 4},
                                           LossyCase{OutputFormat::kWebm, "\x1a\x45\xdf\xa3", 0}),
                         [](const auto& p) { return std::string(FormatName(p.param.format)); });

TEST(GifTest, FewColoursRoundTripExactly) {
  const Video input = MovingSquare(10, 32, 32, 4.0);
  const EncodedMedia media = MustEncode(input, OutputFormat::kGif);
  EXPECT_EQ(media.bytes.substr(0, 6), "GIF89a");
  // NETSCAPE2.0 application extension with loop count 0 = loop forever.
  const size_t netscape = media.bytes.find("NETSCAPE2.0");
  ASSERT_NE(netscape, std::string::npos);
  EXPECT_EQ(media.bytes.substr(netscape + 11, 4), std::string("\x03\x01\x00\x00", 4));

  const Video decoded = MustDecode(media);
  ASSERT_EQ(decoded.frames, 10);
  ASSERT_EQ(decoded.height, 256);
  ASSERT_EQ(decoded.width, 256);
  EXPECT_NEAR(decoded.fps, 4.0, 1e-6);  // 25 centiseconds a frame, exact in GIF
  // Two colours fit the palette exactly, so GIF is lossless here.
  EXPECT_EQ(Compare(decoded, UpscaleNearest(input, 8)).max, 0);
}

TEST(GifTest, ManyColoursAreQuantisedClosely) {
  const Video input = Gradient(4, 64, 64, 10.0);
  const EncodedMedia media = MustEncode(input, OutputFormat::kGif, 1);
  const Video decoded = MustDecode(media);
  ASSERT_EQ(decoded.frames, 4);
  ASSERT_EQ(decoded.height, 64);
  // ~16k colours into 256 entries without dithering: palette entries ~40 levels apart leave
  // a typical error of a quarter of that per channel (measured: mean 6.5, max 24); no pixel
  // may land on a far-off entry.
  const Errors e = Compare(decoded, input);
  EXPECT_LT(e.mean, 8.0);
  EXPECT_LE(e.max, 40);
}

TEST(PngFramesTest, ZipOfLosslessFrames) {
  const Video input = MovingSquare(12, 32, 32, 8.0);
  const EncodedMedia media = MustEncode(input, OutputFormat::kPngFrames, 2);
  EXPECT_EQ(media.mime, "application/zip");
  EXPECT_EQ(media.width, 64);
  EXPECT_EQ(media.height, 64);

  auto archive = ReadStoredZip(media.bytes);
  ASSERT_TRUE(archive.ok()) << archive.status();
  ASSERT_EQ(archive->entries.size(), 12u);
  EXPECT_EQ(archive->entries[0].name, "frame_000.png");
  EXPECT_EQ(archive->entries[11].name, "frame_011.png");
  for (const ZipEntry& e : archive->entries) {
    EXPECT_EQ(e.data.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << e.name;
  }

  const Video decoded = MustDecode(media);
  ASSERT_EQ(decoded.frames, 12);
  EXPECT_EQ(decoded.fps, 8.0);
  const Video want = UpscaleNearest(input, 2);
  ASSERT_EQ(decoded.rgb.size(), want.rgb.size());
  EXPECT_TRUE(decoded.rgb == want.rgb) << "PNG is lossless";
}

TEST(PngFramesTest, EachEntryDecodesOnItsOwn) {
  const Video input = Gradient(3, 16, 24, 2.0);
  const EncodedMedia media = MustEncode(input, OutputFormat::kPngFrames, 1);
  auto archive = ReadStoredZip(media.bytes);
  ASSERT_TRUE(archive.ok());
  ASSERT_EQ(archive->entries.size(), 3u);
  for (int f = 0; f < 3; ++f) {
    ZipArchive single;
    single.entries = {archive->entries[f]};
    auto frame = DecodePngFrames(*WriteStoredZip(single));
    ASSERT_TRUE(frame.ok()) << frame.status();
    ASSERT_EQ(frame->frames, 1);
    EXPECT_TRUE(std::equal(frame->rgb.begin(), frame->rgb.end(), input.frame(f))) << f;
  }
}

class FpsTest : public ::testing::TestWithParam<std::tuple<OutputFormat, double>> {};

TEST_P(FpsTest, RoundTrips) {
  const auto [format, fps] = GetParam();
  const Video decoded = MustDecode(MustEncode(MovingSquare(6, 16, 16, fps), format, 1));
  EXPECT_EQ(decoded.frames, 6);
  EXPECT_NEAR(decoded.fps, fps, fps * 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Rates, FpsTest,
    ::testing::Values(std::tuple{OutputFormat::kMp4, 2.0}, std::tuple{OutputFormat::kMp4, 4.0},
                      std::tuple{OutputFormat::kMp4, 30000.0 / 1001},
                      std::tuple{OutputFormat::kWebm, 2.0}, std::tuple{OutputFormat::kWebm, 4.0},
                      std::tuple{OutputFormat::kWebm, 12.5}, std::tuple{OutputFormat::kGif, 2.0},
                      std::tuple{OutputFormat::kGif, 4.0},
                      std::tuple{OutputFormat::kPngFrames, 30000.0 / 1001}),
    [](const auto& p) {
      std::string name = absl::StrCat(FormatName(std::get<0>(p.param)), "_", std::get<1>(p.param));
      std::replace(name.begin(), name.end(), '.', '_');
      return name;
    });

TEST(ScaleTest, AutoScaleAndExplicitScale) {
  const Video input = MovingSquare(2, 20, 30, 8.0);
  const EncodedMedia automatic = MustEncode(input, OutputFormat::kGif);
  EXPECT_EQ(automatic.height, 20 * 13);  // 12 gives 240 < 256
  EXPECT_EQ(automatic.width, 30 * 13);
  const Video decoded = MustDecode(automatic);
  EXPECT_EQ(decoded.height, 260);
  EXPECT_EQ(decoded.width, 390);

  const EncodedMedia unscaled = MustEncode(input, OutputFormat::kGif, 1);
  EXPECT_EQ(unscaled.height, 20);
  EXPECT_EQ(unscaled.width, 30);
  EXPECT_EQ(MustDecode(unscaled).width, 30);
}

TEST(Mp4Test, OddSizesArePaddedToEven) {
  const Video input = MovingSquare(4, 15, 21, 8.0);
  const EncodedMedia media = MustEncode(input, OutputFormat::kMp4, 3);  // 45x63
  EXPECT_EQ(media.height, 46);
  EXPECT_EQ(media.width, 64);
  const Video decoded = MustDecode(media);
  ASSERT_EQ(decoded.frames, 4);
  ASSERT_EQ(decoded.height, 46);
  ASSERT_EQ(decoded.width, 64);
  // The padding repeats the last row and column; compare the original area.
  const Video want = UpscaleNearest(input, 3);
  double sum = 0;
  for (int f = 0; f < want.frames; ++f) {
    for (int y = 0; y < want.height; ++y) {
      for (int x = 0; x < want.width; ++x) {
        for (int c = 0; c < 3; ++c) {
          sum += std::abs(int{decoded.pixel(f, y, x)[c]} - int{want.pixel(f, y, x)[c]});
        }
      }
    }
  }
  // A small frame, so the square's blurred edges weigh more than at 256 px (measured: 2.7).
  EXPECT_LT(sum / want.rgb.size(), 4.0);
}

void ExpectInvalidField(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message().substr(0, field.size() + 1), field + ":") << s;
}

TEST(EncoderTest, BadInputNamesTheField) {
  const Video good = MovingSquare(2, 16, 16, 8.0);
  EncodeOptions mp4;
  Video v = good;
  v.frames = 0;
  v.rgb.clear();
  ExpectInvalidField(Encode(v, mp4).status(), "frames");
  v = good;
  v.rgb.resize(v.rgb.size() - 3);
  ExpectInvalidField(Encode(v, mp4).status(), "rgb");
  v = good;
  v.fps = -1;
  ExpectInvalidField(Encode(v, mp4).status(), "fps");
  v = good;
  v.width = 0;
  ExpectInvalidField(Encode(v, mp4).status(), "width");

  EncodeOptions bad = mp4;
  bad.scale = kMaxScale + 1;
  ExpectInvalidField(Encode(good, bad).status(), "scale");
  bad = mp4;
  bad.crf = 52;
  ExpectInvalidField(Encode(good, bad).status(), "crf");
  bad.format = OutputFormat::kWebm;
  EXPECT_TRUE(MakeEncoder(bad).ok()) << "VP9's crf goes to 63";

  Video wide = Video::Blank(1, 1, 1000, 8.0);
  EncodeOptions scale16 = mp4;
  scale16.scale = 16;
  ExpectInvalidField(Encode(wide, scale16).status(), "scale");
}

TEST(DecoderTest, BadBytesAreInvalidArgument) {
  ExpectInvalidField(DecodeVideo("").status(), "bytes");
  ExpectInvalidField(DecodeVideo(std::string(1000, 'x')).status(), "bytes");
  ExpectInvalidField(DecodePngFrames("not a zip").status(), "bytes");
  ExpectInvalidField(DecodePngFrames(*WriteStoredZip({})).status(), "bytes");

  // A truncated MP4 loses its moov atom (written last): unreadable, not a crash.
  const EncodedMedia media = MustEncode(MovingSquare(2, 16, 16, 8.0), OutputFormat::kMp4);
  const absl::Status s = DecodeVideo(media.bytes.substr(0, media.bytes.size() / 2)).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bytes"), absl::string_view::npos) << s;
}

TEST(EncoderTest, OneEncoderServesSeveralThreads) {
  EncodeOptions options;
  options.format = OutputFormat::kMp4;
  auto encoder = MakeEncoder(options);
  ASSERT_TRUE(encoder.ok());
  const Video a = MovingSquare(4, 32, 32, 8.0);
  const Video b = MovingSquare(6, 16, 16, 4.0);
  absl::StatusOr<EncodedMedia> ra, rb;
  std::thread ta([&] { ra = (*encoder)->Encode(a); });
  std::thread tb([&] { rb = (*encoder)->Encode(b); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(MustDecode(*ra).frames, 4);
  EXPECT_EQ(MustDecode(*rb).frames, 6);
}

// Runs on machines with and without NVENC: "auto" must pick NVENC exactly where an explicit
// h264_nvenc works, and fall back to libx264 with the reason everywhere else.
TEST(H264ChoiceTest, AutoTakesNvencWhereItOpensElseLibx264AndExplicitNvencFailsNamingTheFlag) {
  absl::StatusOr<H264Choice> automatic = ChooseH264Encoder("auto", "--video-encoder");
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  absl::StatusOr<H264Choice> nvenc = ChooseH264Encoder("h264_nvenc", "--video-encoder");
  if (automatic->encoder == H264Encoder::kNvenc) {
    EXPECT_TRUE(automatic->fallback_reason.empty());
    ASSERT_TRUE(nvenc.ok()) << nvenc.status();
    EXPECT_EQ(nvenc->encoder, H264Encoder::kNvenc);
  } else {
    EXPECT_FALSE(automatic->fallback_reason.empty());
    ASSERT_EQ(nvenc.status().code(), absl::StatusCode::kFailedPrecondition) << nvenc.status();
    EXPECT_TRUE(absl::StartsWith(nvenc.status().message(),
                                 "--video-encoder=h264_nvenc: NVENC cannot encode here ("))
        << nvenc.status();
    EXPECT_NE(nvenc.status().message().find("use --video-encoder=auto or "
                                            "--video-encoder=libx264"),
              absl::string_view::npos);
    // The fallback's MP4s are the x264 ones, byte for byte.
    EncodeOptions options;
    options.format = OutputFormat::kMp4;
    options.h264 = automatic->encoder;
    const Video clip = MovingSquare(6, 32, 32, 8.0);
    const EncodedMedia fallback = MustEncodeWith(clip, options);
    EXPECT_EQ(fallback.bytes, MustEncode(clip, OutputFormat::kMp4).bytes);
  }
  absl::StatusOr<H264Choice> x264 = ChooseH264Encoder("libx264", "--video-encoder");
  ASSERT_TRUE(x264.ok()) << x264.status();
  EXPECT_EQ(x264->encoder, H264Encoder::kLibx264);
  EXPECT_TRUE(x264->fallback_reason.empty());
  const absl::Status unknown = ChooseH264Encoder("x265", "--video-encoder").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown.message(),
            "--video-encoder: \"x265\" is not one of auto, libx264, h264_nvenc");
  EXPECT_EQ(H264EncoderName(H264Encoder::kNvenc), "h264_nvenc");
}

// Where NVENC works, its MP4 decodes to the clip it was given.
TEST(H264ChoiceTest, NvencEncodesWhereItOpens) {
  absl::StatusOr<H264Choice> choice = ChooseH264Encoder("auto", "--video-encoder");
  ASSERT_TRUE(choice.ok()) << choice.status();
  if (choice->encoder != H264Encoder::kNvenc) GTEST_SKIP() << "no NVENC: " << choice->fallback_reason;
  EncodeOptions options;
  options.format = OutputFormat::kMp4;
  options.h264 = H264Encoder::kNvenc;
  const EncodedMedia media = MustEncodeWith(MovingSquare(8, 32, 32, 8.0), options);
  EXPECT_EQ(MustDecode(media).frames, 8);
}

}  // namespace
}  // namespace tpdiff::media
