#include "tpdiff/train/synthetic_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include <ATen/Parallel.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tpdiff::train {
namespace {

constexpr absl::string_view kShapeNames[] = {"circle", "square", "triangle"};
constexpr absl::string_view kColorNames[] = {"red", "green", "blue", "yellow", "white",
                                             "magenta"};
constexpr absl::string_view kDirectionNames[] = {"left",    "right",    "up",        "down",
                                                 "up-left", "up-right", "down-left",
                                                 "down-right"};
constexpr std::array<int, 3> kPalette[] = {{220, 40, 40},   {40, 200, 60},  {50, 80, 230},
                                           {230, 210, 40},  {235, 235, 235}, {210, 60, 200}};

// SplitMix64: tiny, fast, and good enough to decorrelate per-clip streams derived from
// (seed, clip index); std::mt19937 would be slower to seed per clip.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  int Int(int n) { return static_cast<int>(Uniform() * n); }
  bool Bernoulli(double p) { return Uniform() < p; }

 private:
  uint64_t state_;
};

uint64_t ClipSeed(uint64_t seed, uint64_t index) {
  Rng mix(seed ^ (0xD1B54A32D192ED03ull * (index + 1)));
  mix.Next();
  return mix.Next();
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "tpdiff::core synthetic data: %s\n", message.c_str());
  std::abort();
}

// Where the centre may start so that an object of `size` moving `v` px/frame along one axis
// of `extent` px stays inside for `frames` frames. Empty (lo > hi) when it cannot.
std::pair<double, double> StartRange(double size, double v, int frames, int extent) {
  const double travel = v * (frames - 1);
  double lo = size / 2, hi = extent - size / 2;
  if (travel >= 0) {
    hi -= travel;
  } else {
    lo -= travel;
  }
  return {lo, hi};
}

double MaxSizeFor(const ObjectDescription& o, const ClipSpec& spec) {
  const auto dir = DirectionVector(o.direction);
  const double speed = SpeedPixelsPerFrame(o.speed);
  const double span = spec.frames - 1;
  return std::min({static_cast<double>(kMaxObjectSize),
                   spec.width - std::abs(dir[0] * speed) * span,
                   spec.height - std::abs(dir[1] * speed) * span});
}

// Draws size and start of one object; false if the motion cannot fit at the minimum size.
bool PlaceObject(const ObjectDescription& o, const ClipSpec& spec, Rng& rng,
                 ObjectPlacement* p) {
  const double max_size = MaxSizeFor(o, spec);
  if (max_size < kMinObjectSize) return false;
  const auto dir = DirectionVector(o.direction);
  const double speed = SpeedPixelsPerFrame(o.speed);
  p->size = rng.Uniform(kMinObjectSize, max_size);
  p->vx = dir[0] * speed;
  p->vy = dir[1] * speed;
  const auto [xlo, xhi] = StartRange(p->size, p->vx, spec.frames, spec.width);
  const auto [ylo, yhi] = StartRange(p->size, p->vy, spec.frames, spec.height);
  p->x = rng.Uniform(xlo, xhi);
  p->y = rng.Uniform(ylo, yhi);
  return true;
}

// True when the bounding boxes (grown by a 1 px gap) are disjoint in every frame, so the
// two objects never touch or occlude each other and colour alone separates them.
bool Separated(const ObjectPlacement& a, const ObjectPlacement& b, int frames) {
  constexpr double kGap = 1.0;
  for (int t = 0; t < frames; ++t) {
    const double dx = std::abs((a.x + a.vx * t) - (b.x + b.vx * t));
    const double dy = std::abs((a.y + a.vy * t) - (b.y + b.vy * t));
    const double need = (a.size + b.size) / 2 + kGap;
    if (dx < need && dy < need) return false;
  }
  return true;
}

bool PlaceScene(const SceneDescription& scene, const ClipSpec& spec, Rng& rng,
                SceneLayout* layout) {
  constexpr int kAttempts = 64;
  layout->objects.assign(scene.objects.size(), ObjectPlacement{});
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (!PlaceObject(scene.objects[0], spec, rng, &layout->objects[0])) return false;
    if (scene.objects.size() == 1) return true;
    for (int inner = 0; inner < kAttempts; ++inner) {
      if (!PlaceObject(scene.objects[1], spec, rng, &layout->objects[1])) return false;
      if (Separated(layout->objects[0], layout->objects[1], spec.frames)) return true;
    }
  }
  return false;
}

SceneDescription RandomScene(const ClipSpec& spec, Rng& rng) {
  SceneDescription scene;
  const int n = rng.Bernoulli(spec.two_objects_probability) ? 2 : 1;
  scene.gray_background = rng.Bernoulli(spec.gray_background_probability);
  int first_color = -1;
  for (int i = 0; i < n; ++i) {
    ObjectDescription o;
    int c = rng.Int(kNumColors - (i == 0 ? 0 : 1));
    if (i == 1 && c >= first_color) ++c;  // uniform over the colours not yet used
    if (i == 0) first_color = c;
    o.color = static_cast<Color>(c);
    o.shape = static_cast<Shape>(rng.Int(kNumShapes));
    o.direction = static_cast<Direction>(rng.Int(kNumDirections));
    o.speed = rng.Bernoulli(spec.fast_probability) ? Speed::kFast : Speed::kSlow;
    o.speed_stated = o.speed == Speed::kFast || rng.Bernoulli(spec.state_slow_probability);
    scene.objects.push_back(o);
  }
  return scene;
}

// Fraction of pixel [px, px+1] x [py, py+1] inside the shape, computed (near-)exactly so
// that sub-pixel motion is smooth and the covered area does not change from frame to frame:
// squares and triangles clip exactly, circles integrate exact vertical chords over 32
// columns. Regular supersampling grids alias along the triangle's 2:1 edges.
class Coverage {
 public:
  Coverage(Shape shape, double cx, double cy, double size)
      : shape_(shape), cx_(cx), cy_(cy), h_(size / 2) {}

  float At(int px, int py) const {
    switch (shape_) {
      case Shape::kSquare:
        return static_cast<float>(Overlap(px, px + 1.0, cx_ - h_, cx_ + h_) *
                                  Overlap(py, py + 1.0, cy_ - h_, cy_ + h_));
      case Shape::kCircle: {
        const double d = std::hypot(px + 0.5 - cx_, py + 0.5 - cy_);
        if (d + kHalfDiagonal <= h_) return 1.0f;
        if (d - kHalfDiagonal >= h_) return 0.0f;
        return CircleCoverage(px, py);
      }
      case Shape::kTriangle:
        return TriangleCoverage(px, py);
    }
    return 0.0f;
  }

 private:
  static constexpr double kHalfDiagonal = 0.70711;
  static constexpr int kColumns = 32;

  static double Overlap(double a0, double a1, double b0, double b1) {
    return std::max(0.0, std::min(a1, b1) - std::max(a0, b0));
  }

  float CircleCoverage(int px, int py) const {
    double sum = 0;
    for (int i = 0; i < kColumns; ++i) {
      const double dx = px + (i + 0.5) / kColumns - cx_;
      const double q = h_ * h_ - dx * dx;
      if (q <= 0) continue;
      const double half = std::sqrt(q);
      sum += Overlap(py, py + 1.0, cy_ - half, cy_ + half);
    }
    return static_cast<float>(sum / kColumns);
  }

  // Signed distance bound (negative inside) to the triangle with apex (cx, cy - h) and base
  // from (cx - h, cy + h) to (cx + h, cy + h): the max over its edges' half-planes.
  double TriangleDistance(double x, double y) const {
    const double base = y - (cy_ + h_);
    const double side = (2 * std::abs(x - cx_) - (y - (cy_ - h_))) / std::sqrt(5.0);
    return std::max(base, side);
  }

  // Area of the triangle clipped to the pixel (Sutherland-Hodgman, then the shoelace sum);
  // pixels wholly inside or outside skip the clipping.
  float TriangleCoverage(int px, int py) const {
    const double sd = TriangleDistance(px + 0.5, py + 0.5);
    if (sd <= -kHalfDiagonal) return 1.0f;
    if (sd >= kHalfDiagonal) return 0.0f;
    struct P {
      double x, y;
    };
    // A triangle clipped by 4 half-planes has at most 7 vertices.
    P buf[2][8] = {{{cx_, cy_ - h_}, {cx_ + h_, cy_ + h_}, {cx_ - h_, cy_ + h_}}};
    int n = 3, cur = 0;
    // Keeps the part with sign * (coordinate - bound) <= 0.
    auto clip = [&](bool use_x, double bound, double sign) {
      const P* in = buf[cur];
      P* out = buf[1 - cur];
      int m = 0;
      for (int i = 0; i < n; ++i) {
        const P& a = in[i];
        const P& b = in[(i + 1) % n];
        const double da = sign * ((use_x ? a.x : a.y) - bound);
        const double db = sign * ((use_x ? b.x : b.y) - bound);
        if (da <= 0) out[m++] = a;
        if ((da < 0 && db > 0) || (da > 0 && db < 0)) {
          const double f = da / (da - db);
          out[m++] = {a.x + f * (b.x - a.x), a.y + f * (b.y - a.y)};
        }
      }
      n = m;
      cur = 1 - cur;
    };
    clip(true, px, -1.0);
    clip(true, px + 1.0, 1.0);
    clip(false, py, -1.0);
    clip(false, py + 1.0, 1.0);
    double area = 0;
    for (int i = 0; i < n; ++i) {
      const P& a = buf[cur][i];
      const P& b = buf[cur][(i + 1) % n];
      area += a.x * b.y - b.x * a.y;
    }
    return static_cast<float>(std::min(1.0, std::abs(area) / 2));
  }

  Shape shape_;
  double cx_, cy_, h_;
};

// Rasterises into `out` laid out [3, T, H, W] (channel stride = T*H*W), values in [-1, 1].
void Rasterize(const SceneDescription& scene, const SceneLayout& layout, const ClipSpec& spec,
               float* out) {
  const int T = spec.frames, H = spec.height, W = spec.width;
  const int64_t frame = static_cast<int64_t>(H) * W;
  const int64_t channel = frame * T;
  const auto bg = scene.gray_background ? kGrayBackground : kBlackBackground;
  std::vector<float> rgb(3 * frame);  // one frame, 0..255, [3, H, W]
  for (int t = 0; t < T; ++t) {
    for (int c = 0; c < 3; ++c) {
      std::fill(rgb.begin() + c * frame, rgb.begin() + (c + 1) * frame,
                static_cast<float>(bg[c]));
    }
    for (size_t n = 0; n < scene.objects.size() && n < layout.objects.size(); ++n) {
      const ObjectPlacement& p = layout.objects[n];
      const auto color = ColorRgb(scene.objects[n].color);
      const double cx = p.x + p.vx * t, cy = p.y + p.vy * t;
      const Coverage cov(scene.objects[n].shape, cx, cy, p.size);
      const int x0 = std::max(0, static_cast<int>(std::floor(cx - p.size / 2)));
      const int x1 = std::min(W - 1, static_cast<int>(std::ceil(cx + p.size / 2)));
      const int y0 = std::max(0, static_cast<int>(std::floor(cy - p.size / 2)));
      const int y1 = std::min(H - 1, static_cast<int>(std::ceil(cy + p.size / 2)));
      for (int y = y0; y <= y1; ++y) {
        for (int x = x0; x <= x1; ++x) {
          const float a = cov.At(x, y);
          if (a <= 0) continue;
          for (int c = 0; c < 3; ++c) {
            float& v = rgb[c * frame + y * W + x];
            v += a * (color[c] - v);
          }
        }
      }
    }
    for (int c = 0; c < 3; ++c) {
      float* dst = out + c * channel + t * frame;
      const float* src = rgb.data() + c * frame;
      for (int64_t i = 0; i < frame; ++i) dst[i] = src[i] * (1.0f / 127.5f) - 1.0f;
    }
  }
}

absl::Status ValidateScene(const SceneDescription& scene, absl::string_view field) {
  if (scene.objects.empty() || scene.objects.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", scene.objects.size(), " objects; a scene has 1 or 2 objects"));
  }
  if (scene.objects.size() == 2 && scene.objects[0].color == scene.objects[1].color) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": both objects are ", ColorName(scene.objects[0].color),
                     "; the two objects must have different colours"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view ShapeName(Shape s) { return kShapeNames[static_cast<int>(s)]; }
absl::string_view ColorName(Color c) { return kColorNames[static_cast<int>(c)]; }
absl::string_view DirectionName(Direction d) { return kDirectionNames[static_cast<int>(d)]; }
absl::string_view SpeedName(Speed s) { return s == Speed::kFast ? "fast" : "slow"; }
std::array<int, 3> ColorRgb(Color c) { return kPalette[static_cast<int>(c)]; }

std::array<double, 2> DirectionVector(Direction d) {
  constexpr double r = 0.70710678118654752;
  switch (d) {
    case Direction::kLeft: return {-1, 0};
    case Direction::kRight: return {1, 0};
    case Direction::kUp: return {0, -1};
    case Direction::kDown: return {0, 1};
    case Direction::kUpLeft: return {-r, -r};
    case Direction::kUpRight: return {r, -r};
    case Direction::kDownLeft: return {-r, r};
    case Direction::kDownRight: return {r, r};
  }
  return {0, 0};
}

double SpeedPixelsPerFrame(Speed s) { return s == Speed::kFast ? kFastSpeed : kSlowSpeed; }

bool operator==(const ObjectDescription& a, const ObjectDescription& b) {
  return a.color == b.color && a.shape == b.shape && a.direction == b.direction &&
         a.speed == b.speed && a.speed_stated == b.speed_stated;
}

bool operator==(const SceneDescription& a, const SceneDescription& b) {
  return a.gray_background == b.gray_background && a.objects == b.objects;
}

namespace {

template <size_t N>
int FindWord(const absl::string_view (&names)[N], absl::string_view word) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == word) return static_cast<int>(i);
  }
  return -1;
}

template <size_t N>
std::string Choices(const absl::string_view (&names)[N]) {
  return absl::StrJoin(names, ", ");
}

// Recursive-descent parser over the caption's words; errors name the 1-based word position.
class CaptionParser {
 public:
  explicit CaptionParser(std::vector<std::string> words) : words_(std::move(words)) {}

  absl::StatusOr<SceneDescription> Parse() {
    SceneDescription scene;
    if (words_.empty()) return absl::InvalidArgumentError("caption: empty");
    while (true) {
      auto object = ParseObject();
      if (!object.ok()) return object.status();
      scene.objects.push_back(*object);
      if (AtEnd()) break;
      if (words_[pos_] == "and") {
        if (scene.objects.size() == 2) {
          return Error("a caption describes at most 2 objects");
        }
        ++pos_;
        continue;
      }
      if (words_[pos_] == "on") {
        for (absl::string_view w : {"on", "a", "gray", "background"}) {
          if (AtEnd() || words_[pos_] != w) {
            return Error(absl::StrCat("expected '", w, "' in 'on a gray background'"));
          }
          ++pos_;
        }
        scene.gray_background = true;
        if (!AtEnd()) return Error("expected the end of the caption");
        break;
      }
      return Error("expected 'and', 'on a gray background' or the end of the caption");
    }
    if (absl::Status s = ValidateScene(scene, "caption"); !s.ok()) return s;
    return scene;
  }

 private:
  bool AtEnd() const { return pos_ >= words_.size(); }

  absl::Status Error(absl::string_view expected) const {
    if (AtEnd()) {
      return absl::InvalidArgumentError(
          absl::StrCat("caption: ended after word ", pos_, ": ", expected));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("caption: word ", pos_ + 1, " '", words_[pos_], "': ", expected));
  }

  absl::StatusOr<ObjectDescription> ParseObject() {
    ObjectDescription o;
    if (AtEnd() || words_[pos_] != "a") return Error("expected 'a'");
    ++pos_;
    if (!AtEnd() && (words_[pos_] == "slow" || words_[pos_] == "fast")) {
      o.speed = words_[pos_] == "fast" ? Speed::kFast : Speed::kSlow;
      o.speed_stated = true;
      ++pos_;
    }
    int c = AtEnd() ? -1 : FindWord(kColorNames, words_[pos_]);
    if (c < 0) return Error(absl::StrCat("expected a colour (", Choices(kColorNames), ")"));
    o.color = static_cast<Color>(c);
    ++pos_;
    int s = AtEnd() ? -1 : FindWord(kShapeNames, words_[pos_]);
    if (s < 0) return Error(absl::StrCat("expected a shape (", Choices(kShapeNames), ")"));
    o.shape = static_cast<Shape>(s);
    ++pos_;
    if (AtEnd() || words_[pos_] != "moving") return Error("expected 'moving'");
    ++pos_;
    int d = AtEnd() ? -1 : FindWord(kDirectionNames, words_[pos_]);
    if (d < 0) {
      return Error(absl::StrCat("expected a direction (", Choices(kDirectionNames), ")"));
    }
    o.direction = static_cast<Direction>(d);
    ++pos_;
    return o;
  }

  std::vector<std::string> words_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<SceneDescription> ParseCaption(absl::string_view caption) {
  std::vector<std::string> words =
      absl::StrSplit(absl::AsciiStrToLower(caption), absl::ByAnyChar(" \t\r\n"),
                     absl::SkipEmpty());
  return CaptionParser(std::move(words)).Parse();
}

std::string FormatCaption(const SceneDescription& scene) {
  std::string out;
  for (size_t i = 0; i < scene.objects.size(); ++i) {
    const ObjectDescription& o = scene.objects[i];
    if (i > 0) absl::StrAppend(&out, " and ");
    absl::StrAppend(&out, "a ");
    if (o.speed == Speed::kFast || o.speed_stated) absl::StrAppend(&out, SpeedName(o.speed), " ");
    absl::StrAppend(&out, ColorName(o.color), " ", ShapeName(o.shape), " moving ",
                    DirectionName(o.direction));
  }
  if (scene.gray_background) absl::StrAppend(&out, " on a gray background");
  return out;
}

absl::Status ValidateClipSpec(const ClipSpec& spec) {
  if (spec.frames < 4 || spec.frames % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frames: ", spec.frames, " is not a positive multiple of 4"));
  }
  for (auto [name, v] : {std::pair<const char*, int>{"height", spec.height},
                         std::pair<const char*, int>{"width", spec.width}}) {
    if (v < 16 || v > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", v, " is outside [16, 256]"));
    }
  }
  for (auto [name, p] :
       {std::pair<const char*, double>{"two_objects_probability", spec.two_objects_probability},
        {"gray_background_probability", spec.gray_background_probability},
        {"fast_probability", spec.fast_probability},
        {"state_slow_probability", spec.state_slow_probability}}) {
    if (!(p >= 0 && p <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", p, " is outside [0, 1]"));
    }
  }
  const double needed = kMinObjectSize + kFastSpeed * (spec.frames - 1);
  if (needed > std::min(spec.height, spec.width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frames: ", spec.frames, " is too many for a ", spec.height, "x", spec.width,
        " frame: a fast object needs ", needed, " px to cross it; at most ",
        static_cast<int>((std::min(spec.height, spec.width) - kMinObjectSize) / kFastSpeed) + 1,
        " frames fit"));
  }
  return absl::OkStatus();
}

torch::Tensor RenderLayout(const SceneDescription& scene, const SceneLayout& layout,
                           const ClipSpec& spec) {
  torch::Tensor out = torch::empty({3, spec.frames, spec.height, spec.width}, torch::kFloat32);
  Rasterize(scene, layout, spec, out.data_ptr<float>());
  return out;
}

absl::StatusOr<torch::Tensor> RenderScene(const SceneDescription& scene, const ClipSpec& spec,
                                          uint64_t seed, SceneLayout* layout) {
  if (absl::Status s = ValidateClipSpec(spec); !s.ok()) return s;
  if (absl::Status s = ValidateScene(scene, "scene"); !s.ok()) return s;
  Rng rng(ClipSeed(seed, 0));
  SceneLayout placed;
  if (!PlaceScene(scene, spec, rng, &placed)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scene: '", FormatCaption(scene), "' cannot be fitted into ", spec.frames,
        " frames of ", spec.height, "x", spec.width, " without leaving the frame or overlapping"));
  }
  torch::Tensor video = RenderLayout(scene, placed, spec);
  if (layout != nullptr) *layout = std::move(placed);
  return video;
}

ClipBatch RenderClipBatch(const ClipSpec& spec, int batch, uint64_t seed) {
  if (absl::Status s = ValidateClipSpec(spec); !s.ok()) Die(std::string(s.message()));
  if (batch < 1) Die(absl::StrCat("batch: ", batch, " is below 1"));
  ClipBatch out;
  out.video = torch::empty({batch, 3, spec.frames, spec.height, spec.width}, torch::kFloat32);
  out.captions.resize(batch);
  out.scenes.resize(batch);
  out.layouts.resize(batch);
  const int64_t clip_numel = out.video.numel() / batch;
  float* data = out.video.data_ptr<float>();
  // Clips are independent and each has its own random stream, so the result does not
  // depend on how the work is split between threads.
  at::parallel_for(0, batch, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Rng rng(ClipSeed(seed, static_cast<uint64_t>(i)));
      SceneDescription scene;
      SceneLayout layout;
      do {  // a random scene whose motion cannot be fitted (rare) is simply redrawn
        scene = RandomScene(spec, rng);
      } while (!PlaceScene(scene, spec, rng, &layout));
      Rasterize(scene, layout, spec, data + i * clip_numel);
      out.captions[i] = FormatCaption(scene);
      out.scenes[i] = std::move(scene);
      out.layouts[i] = std::move(layout);
    }
  });
  return out;
}

}  // namespace tpdiff::train
