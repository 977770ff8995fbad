#ifndef TPDIFF_TRAIN_SYNTHETIC_DATA_H_
#define TPDIFF_TRAIN_SYNTHETIC_DATA_H_

// Procedural captioned clips: the training and evaluation data of the bundled model.
//
// A scene holds one or two filled shapes (circle, square, triangle with its apex up) of a
// palette colour, each moving in a straight line in one of 8 directions at a slow
// (0.75 px/frame) or fast (1.5 px/frame) speed, on a black or mid-gray background. The
// speed is the length of the per-frame displacement (diagonals move 0.75/sqrt(2) px per
// axis). Every object stays wholly inside the frame for the whole clip, and the two objects
// of a scene never overlap in any frame (so they can be told apart by colour alone).
//
// Caption grammar (lower-case words, single spaces):
//   caption := object [" and " object] [" on a gray background"]
//   object  := "a " [speed " "] color " " shape " moving " direction
//   speed   := "slow" | "fast"            (omitted = slow)
//   color   := red | green | blue | yellow | white | magenta
//   shape   := circle | square | triangle
//   direction := left | right | up | down | up-left | up-right | down-left | down-right
// Every caption word is in ShapesVocabulary() (tokenizer.h). The two objects of a scene have
// different colours. Random captions state "slow" for
// about half of the slow objects, so a model learns that an omitted speed means slow.
//
// Everything here is deterministic by seed, pure C++ on the CPU, and thread-safe (no
// shared state).

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::train {

enum class Shape { kCircle, kSquare, kTriangle };
enum class Color { kRed, kGreen, kBlue, kYellow, kWhite, kMagenta };
enum class Direction { kLeft, kRight, kUp, kDown, kUpLeft, kUpRight, kDownLeft, kDownRight };
enum class Speed { kSlow, kFast };

inline constexpr int kNumShapes = 3;
inline constexpr int kNumColors = 6;
inline constexpr int kNumDirections = 8;

inline constexpr double kSlowSpeed = 0.75;  // px per frame
inline constexpr double kFastSpeed = 1.5;
inline constexpr int kMinObjectSize = 7;    // px across (bounding box side)
inline constexpr int kMaxObjectSize = 11;

// Background colours (RGB, 0..255).
inline constexpr std::array<int, 3> kBlackBackground = {0, 0, 0};
inline constexpr std::array<int, 3> kGrayBackground = {90, 90, 90};

absl::string_view ShapeName(Shape s);          // "circle", ...
absl::string_view ColorName(Color c);          // "red", ...
absl::string_view DirectionName(Direction d);  // "up-left", ...
absl::string_view SpeedName(Speed s);          // "slow" | "fast"
std::array<int, 3> ColorRgb(Color c);          // the palette, 0..255
// Unit vector of a direction in image coordinates (x right, y DOWN): "up" is (0, -1).
std::array<double, 2> DirectionVector(Direction d);
double SpeedPixelsPerFrame(Speed s);

struct ObjectDescription {
  Color color = Color::kRed;
  Shape shape = Shape::kCircle;
  Direction direction = Direction::kRight;
  Speed speed = Speed::kSlow;
  // Whether the caption spells the speed out. Always true for fast objects; for slow ones it
  // only changes the caption text, not the video.
  bool speed_stated = false;
};

// What a caption says. Parsing and formatting round-trip exactly.
struct SceneDescription {
  std::vector<ObjectDescription> objects;  // 1 or 2, different colours
  bool gray_background = false;
};

bool operator==(const ObjectDescription& a, const ObjectDescription& b);
bool operator==(const SceneDescription& a, const SceneDescription& b);
inline bool operator!=(const SceneDescription& a, const SceneDescription& b) {
  return !(a == b);
}

// Parses the grammar above (case-insensitive, any whitespace). INVALID_ARGUMENT naming the
// word position and what was expected, e.g. "caption: word 3 'purple': expected a colour
// (red, green, blue, yellow, white, magenta)", or "caption: both objects are red; the two
// objects must have different colours".
absl::StatusOr<SceneDescription> ParseCaption(absl::string_view caption);
std::string FormatCaption(const SceneDescription& scene);

// Where one object of a rendered clip is: sizes and positions in pixels, sub-pixel precise.
struct ObjectPlacement {
  double size = 0;           // bounding-box side (circle diameter, triangle base = height)
  double x = 0, y = 0;       // centre of the bounding box at frame 0 (x right, y down)
  double vx = 0, vy = 0;     // displacement per frame
};
struct SceneLayout {
  std::vector<ObjectPlacement> objects;  // parallel to SceneDescription::objects
};

struct ClipSpec {
  int frames = 16;  // divisible by 4 (the 3-stage pyramid)
  int height = 32;
  int width = 32;
  double two_objects_probability = 0.4;
  double gray_background_probability = 0.3;
  double fast_probability = 0.4;         // per object
  double state_slow_probability = 0.5;   // per slow object: caption says "slow"
};

// OK, or INVALID_ARGUMENT naming the field: frames not a positive multiple of 4, height or
// width below 16 or above 256, probabilities outside [0, 1], or a clip so long that a fast
// object of the smallest size cannot cross the frame without leaving it
// (kMinObjectSize + 1.5 (frames - 1) must be <= min(height, width); at 32x32 that allows
// up to 17 frames, so 16 with any speed).
absl::Status ValidateClipSpec(const ClipSpec& spec);

struct ClipBatch {
  torch::Tensor video;                   // [B, 3, T, H, W] float32 in [-1, 1], CPU
  std::vector<std::string> captions;     // B captions
  std::vector<SceneDescription> scenes;  // B scenes (captions parse back to these)
  std::vector<SceneLayout> layouts;      // B layouts (ground truth for tests)
};

// Draws `batch` random scenes and renders them. Same (spec, batch, seed) = same bytes.
// Clip i depends only on (spec, seed, i), so batches can be produced in parallel with
// different seeds. Precondition: ValidateClipSpec(spec).ok() and batch >= 1; violating it
// aborts with a message (it is a programming error, not bad input).
ClipBatch RenderClipBatch(const ClipSpec& spec, int batch, uint64_t seed);

// Renders a given scene (e.g. an evaluation prompt): sizes and start positions are drawn
// from `seed`. Returns [3, T, H, W] float32 in [-1, 1]. INVALID_ARGUMENT for a bad spec, a
// scene with 0 or more than 2 objects or repeated colours, or a scene whose motion cannot be
// fitted into the frame (e.g. two fast objects in a tiny frame). `layout` may be null.
absl::StatusOr<torch::Tensor> RenderScene(const SceneDescription& scene, const ClipSpec& spec,
                                          uint64_t seed, SceneLayout* layout = nullptr);

// Renders a scene with a given layout: [3, T, H, W] float32 in [-1, 1]. Objects are not
// checked against the frame (this is the rasteriser the functions above use).
torch::Tensor RenderLayout(const SceneDescription& scene, const SceneLayout& layout,
                           const ClipSpec& spec);

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_SYNTHETIC_DATA_H_
