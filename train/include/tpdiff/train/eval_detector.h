#ifndef TPDIFF_TRAIN_EVAL_DETECTOR_H_
#define TPDIFF_TRAIN_EVAL_DETECTOR_H_

// Scores how well a video follows a synthetic-data caption (synthetic_data.h): background,
// object count, colour, shape, direction and speed of every object, plus smoothness figures.
//
// How it decides (thresholds measured on rendered clips, see tests/unit/train):
//  - Background: the per-channel median of the whole video, nearest of black / gray.
//  - Segmentation: each pixel is explained as background + alpha (palette colour -
//    background) for the palette colour with the smallest residual (robust to anti-aliased
//    edges); alpha >= 0.5 and residual <= kMaxResidual make it that colour's foreground.
//    Per frame and colour the largest 4-connected component, grown by its 8-neighbour edge
//    pixels, is that colour's object in that frame. A colour is an object of the video when
//    it has a component of plausible area in at least 75% of the frames.
//  - Objects are matched to the caption by colour; caption objects whose colour is absent
//    take the remaining detected objects (largest first) and fail the colour check only.
//  - Shape: median over frames of area / (widest row coverage x tallest column coverage):
//    square 0.99-1.0, circle 0.79-0.80, triangle 0.57-0.68 on rendered clips; thresholds kSquareCircleFill and
//    kCircleTriangleFill.
//  - Motion: least-squares slope of the centroid track (px/frame). Direction is right when
//    the slope's angle lies in the captioned 45-degree sector and the speed is at least
//    kMinSpeed; speed is fast above kFastSlowSpeed.
//  - Smoothness (reported, not part of adherence): mean |second difference| of the centroid
//    track in px/frame^2 (0 for ideal linear motion) and mean |frame-to-frame change| of the
//    pixels in [0, 1] units.
//
// Stateless and thread-safe.

#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/train/synthetic_data.h"

namespace tpdiff::train {

struct DetectorThresholds {
  double max_residual = 70;           // RGB distance of a pixel off the background-colour line
  double min_area = 12;               // px, plausible object area (a 7 px triangle is 24.5)
  double max_area = 220;              // px (an 11 px square is 121)
  double min_present_fraction = 0.75; // of the frames
  double square_circle_fill = 0.9;    // fill ratio above: square
  double circle_triangle_fill = 0.735; // fill ratio below: triangle
  double min_speed = 0.3;             // px/frame, slower counts as not moving
  double fast_slow_speed = 1.1;       // px/frame (slow 0.75, fast 1.5)
};

struct ObjectScore {
  bool found = false;  // an object was matched to this caption object
  bool color_ok = false;
  bool shape_ok = false;
  bool direction_ok = false;
  bool speed_ok = false;
  // What was measured (meaningful when found).
  Color color = Color::kRed;
  Shape shape = Shape::kCircle;
  double fill_ratio = 0;
  double vx = 0, vy = 0;         // px/frame, y down
  double speed = 0;              // px/frame
  double present_fraction = 0;   // of the frames in which the object was segmented
  double jerk = 0;               // mean |second difference| of the centroid, px/frame^2
};

struct VideoScore {
  bool background_ok = false;
  bool count_ok = false;      // as many objects detected as the caption has
  bool color_ok = false;      // every caption object: found with its colour
  bool shape_ok = false;      // ... and so on for every attribute
  bool direction_ok = false;
  bool speed_ok = false;
  bool adherent = false;      // all of the above
  double jerk = 0;            // mean over found objects (0 if none)
  double frame_change = 0;    // mean |x_{t+1} - x_t| over pixels, [0, 1] units
  int detected_objects = 0;
  std::vector<ObjectScore> objects;  // parallel to the scene's objects
};

// `video`: [3, T, H, W] (or [1, 3, T, H, W]) on any device, uint8 0..255 or floating point
// in [-1, 1] (clamped). INVALID_ARGUMENT for other shapes, dtypes, or fewer than 2 frames.
absl::StatusOr<VideoScore> ScoreVideo(const torch::Tensor& video, const SceneDescription& scene,
                                      const DetectorThresholds& thresholds = {});
// Parses the caption first (ParseCaption's errors).
absl::StatusOr<VideoScore> ScoreVideo(const torch::Tensor& video, absl::string_view caption,
                                      const DetectorThresholds& thresholds = {});

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_EVAL_DETECTOR_H_
