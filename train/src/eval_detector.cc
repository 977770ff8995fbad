#include "tpdiff/train/eval_detector.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace tpdiff::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Frames {
  int T = 0, H = 0, W = 0;
  torch::Tensor rgb;  // [3, T, H, W] float32 0..255, contiguous, CPU
  const float* data = nullptr;
  float At(int c, int t, int y, int x) const {
    return data[((static_cast<int64_t>(c) * T + t) * H + y) * W + x];
  }
};

absl::StatusOr<Frames> ToFrames(const torch::Tensor& video) {
  if (!video.defined()) return absl::InvalidArgumentError("video: undefined tensor");
  torch::Tensor v = video;
  if (v.dim() == 5 && v.size(0) == 1) v = v[0];
  if (v.dim() != 4 || v.size(0) != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "video: shape ", c10::str(v.sizes()), " is not [3, T, H, W] or [1, 3, T, H, W]"));
  }
  if (v.size(1) < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("video: ", v.size(1), " frames; scoring motion needs at least 2"));
  }
  v = v.to(torch::kCPU);
  if (v.scalar_type() == torch::kUInt8) {
    v = v.to(torch::kFloat32);
  } else if (v.is_floating_point()) {
    v = (v.to(torch::kFloat32).clamp(-1, 1) + 1) * 127.5;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "video: dtype ", c10::toString(v.scalar_type()), " is neither uint8 nor floating point"));
  }
  Frames f;
  f.rgb = v.contiguous();
  f.T = static_cast<int>(v.size(1));
  f.H = static_cast<int>(v.size(2));
  f.W = static_cast<int>(v.size(3));
  f.data = f.rgb.data_ptr<float>();
  return f;
}

// A pixel explained as background + alpha * (colour - background).
struct Fit {
  double alpha = 0;
  double residual = 1e9;
};

class Segmenter {
 public:
  Segmenter(const Frames& f, std::array<double, 3> background, const DetectorThresholds& th)
      : f_(f), bg_(background), th_(th) {
    for (int c = 0; c < kNumColors; ++c) {
      const auto rgb = ColorRgb(static_cast<Color>(c));
      double n2 = 0;
      for (int k = 0; k < 3; ++k) {
        dir_[c][k] = rgb[k] - bg_[k];
        n2 += dir_[c][k] * dir_[c][k];
      }
      inv_norm2_[c] = n2 > 1e-6 ? 1.0 / n2 : 0.0;
    }
  }

  Fit FitColor(int t, int y, int x, int c) const {
    double d[3];
    double dot = 0;
    for (int k = 0; k < 3; ++k) {
      d[k] = f_.At(k, t, y, x) - bg_[k];
      dot += d[k] * dir_[c][k];
    }
    Fit fit;
    fit.alpha = std::clamp(dot * inv_norm2_[c], 0.0, 1.0);
    double r2 = 0;
    for (int k = 0; k < 3; ++k) {
      const double e = d[k] - fit.alpha * dir_[c][k];
      r2 += e * e;
    }
    fit.residual = std::sqrt(r2);
    return fit;
  }

  // Per pixel of frame t: the best-fitting colour if it is foreground (alpha >= 0.5 and a
  // small residual), else -1.
  void Label(int t, std::vector<int>* label) const {
    label->assign(static_cast<size_t>(f_.H) * f_.W, -1);
    for (int y = 0; y < f_.H; ++y) {
      for (int x = 0; x < f_.W; ++x) {
        int best = -1;
        Fit best_fit;
        for (int c = 0; c < kNumColors; ++c) {
          const Fit fit = FitColor(t, y, x, c);
          if (fit.residual < best_fit.residual) {
            best_fit = fit;
            best = c;
          }
        }
        if (best >= 0 && best_fit.alpha >= 0.5 && best_fit.residual <= th_.max_residual) {
          (*label)[y * f_.W + x] = best;
        }
      }
    }
  }

  const DetectorThresholds& thresholds() const { return th_; }

 private:
  const Frames& f_;
  std::array<double, 3> bg_;
  const DetectorThresholds& th_;
  double dir_[kNumColors][3] = {};
  double inv_norm2_[kNumColors] = {};
};

// One colour's object in one frame.
struct Blob {
  bool present = false;
  double area = 0;
  double cx = 0, cy = 0;
  double fill = 0;
};

Blob FindBlob(const Segmenter& seg, const Frames& f, int t, int color,
              const std::vector<int>& label) {
  const int H = f.H, W = f.W;
  std::vector<int> component(static_cast<size_t>(H) * W, 0);  // component id + 1
  std::vector<int> stack;
  int best_id = 0;
  size_t best_size = 0;
  int next_id = 0;
  for (int start = 0; start < H * W; ++start) {
    if (label[start] != color || component[start] != 0) continue;
    const int id = ++next_id;
    size_t size = 0;
    stack.assign(1, start);
    component[start] = id;
    while (!stack.empty()) {
      const int p = stack.back();
      stack.pop_back();
      ++size;
      const int y = p / W, x = p % W;
      const int nb[4][2] = {{y - 1, x}, {y + 1, x}, {y, x - 1}, {y, x + 1}};
      for (const auto& n : nb) {
        if (n[0] < 0 || n[0] >= H || n[1] < 0 || n[1] >= W) continue;
        const int q = n[0] * W + n[1];
        if (label[q] == color && component[q] == 0) {
          component[q] = id;
          stack.push_back(q);
        }
      }
    }
    if (size > best_size) {
      best_size = size;
      best_id = id;
    }
  }
  Blob blob;
  if (best_id == 0) return blob;
  // Weights: the component's own pixels, plus the anti-aliased fringe around it (8-neighbours
  // that are not another colour's foreground), each weighted by its alpha for this colour.
  std::vector<double> weight(static_cast<size_t>(H) * W, 0.0);
  for (int p = 0; p < H * W; ++p) {
    if (component[p] != best_id) continue;
    const int y = p / W, x = p % W;
    weight[p] = seg.FitColor(t, y, x, color).alpha;
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        const int yy = y + dy, xx = x + dx;
        if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
        const int q = yy * W + xx;
        if (component[q] == best_id || label[q] >= 0 || weight[q] > 0) continue;
        const Fit fit = seg.FitColor(t, yy, xx, color);
        if (fit.residual <= seg.thresholds().max_residual) weight[q] = fit.alpha;
      }
    }
  }
  std::vector<double> row(H, 0.0), col(W, 0.0);
  double sx = 0, sy = 0;
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const double w = weight[y * W + x];
      if (w <= 0) continue;
      blob.area += w;
      row[y] += w;
      col[x] += w;
      sx += w * (x + 0.5);
      sy += w * (y + 0.5);
    }
  }
  const auto& th = seg.thresholds();
  if (blob.area < th.min_area || blob.area > th.max_area) return blob;
  blob.present = true;
  blob.cx = sx / blob.area;
  blob.cy = sy / blob.area;
  const double max_row = *std::max_element(row.begin(), row.end());
  const double max_col = *std::max_element(col.begin(), col.end());
  blob.fill = blob.area / (max_row * max_col);
  return blob;
}

// One colour tracked over the clip.
struct Track {
  int color = 0;
  std::vector<Blob> frames;
  int present = 0;
  double mean_area = 0;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  return v[mid];
}

ObjectScore Measure(const Track& track, const ObjectDescription& want,
                    const DetectorThresholds& th) {
  ObjectScore s;
  s.found = true;
  s.color = static_cast<Color>(track.color);
  s.color_ok = s.color == want.color;
  s.present_fraction = static_cast<double>(track.present) / track.frames.size();

  std::vector<double> fills, ts, xs, ys;
  for (size_t t = 0; t < track.frames.size(); ++t) {
    const Blob& b = track.frames[t];
    if (!b.present) continue;
    fills.push_back(b.fill);
    ts.push_back(static_cast<double>(t));
    xs.push_back(b.cx);
    ys.push_back(b.cy);
  }
  s.fill_ratio = Median(fills);
  s.shape = s.fill_ratio >= th.square_circle_fill    ? Shape::kSquare
            : s.fill_ratio >= th.circle_triangle_fill ? Shape::kCircle
                                                       : Shape::kTriangle;
  s.shape_ok = s.shape == want.shape;

  // Least-squares velocity over the frames where the object was seen.
  const double n = static_cast<double>(ts.size());
  const double tm = std::accumulate(ts.begin(), ts.end(), 0.0) / n;
  const double xm = std::accumulate(xs.begin(), xs.end(), 0.0) / n;
  const double ym = std::accumulate(ys.begin(), ys.end(), 0.0) / n;
  double stt = 0, stx = 0, sty = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    stt += (ts[i] - tm) * (ts[i] - tm);
    stx += (ts[i] - tm) * (xs[i] - xm);
    sty += (ts[i] - tm) * (ys[i] - ym);
  }
  if (stt > 0) {
    s.vx = stx / stt;
    s.vy = sty / stt;
  }
  s.speed = std::hypot(s.vx, s.vy);
  const auto d = DirectionVector(want.direction);
  const double angle = std::atan2(s.vy, s.vx), want_angle = std::atan2(d[1], d[0]);
  double diff = std::abs(angle - want_angle);
  if (diff > kPi) diff = 2 * kPi - diff;
  s.direction_ok = s.speed >= th.min_speed && diff <= kPi / 8 + 1e-9;
  const bool fast = s.speed >= th.fast_slow_speed;
  s.speed_ok = s.speed >= th.min_speed && fast == (want.speed == Speed::kFast);

  // Jerk over consecutive frame triples where the object was seen.
  double jerk = 0;
  int triples = 0;
  for (size_t i = 2; i < ts.size(); ++i) {
    if (ts[i] - ts[i - 2] != 2) continue;
    jerk += std::hypot(xs[i] - 2 * xs[i - 1] + xs[i - 2], ys[i] - 2 * ys[i - 1] + ys[i - 2]);
    ++triples;
  }
  s.jerk = triples > 0 ? jerk / triples : 0;
  return s;
}

}  // namespace

absl::StatusOr<VideoScore> ScoreVideo(const torch::Tensor& video, const SceneDescription& scene,
                                      const DetectorThresholds& th) {
  if (scene.objects.empty()) return absl::InvalidArgumentError("scene: no objects");
  absl::StatusOr<Frames> frames_or = ToFrames(video);
  if (!frames_or.ok()) return frames_or.status();
  const Frames& f = *frames_or;
  VideoScore score;

  // Background: objects cover well under half the frame, so the median is background.
  const torch::Tensor median = std::get<0>(f.rgb.reshape({3, -1}).median(1));
  std::array<double, 3> bg;
  double to_black = 0, to_gray = 0;
  for (int k = 0; k < 3; ++k) {
    bg[k] = median[k].item<float>();
    to_black += (bg[k] - kBlackBackground[k]) * (bg[k] - kBlackBackground[k]);
    to_gray += (bg[k] - kGrayBackground[k]) * (bg[k] - kGrayBackground[k]);
  }
  score.background_ok = (to_gray < to_black) == scene.gray_background;

  score.frame_change =
      (f.rgb.narrow(1, 1, f.T - 1) - f.rgb.narrow(1, 0, f.T - 1)).abs().mean().item<double>() /
      255.0;

  const Segmenter seg(f, bg, th);
  std::vector<Track> tracks(kNumColors);
  for (int c = 0; c < kNumColors; ++c) {
    tracks[c].color = c;
    tracks[c].frames.resize(f.T);
  }
  std::vector<int> label;
  for (int t = 0; t < f.T; ++t) {
    seg.Label(t, &label);
    for (int c = 0; c < kNumColors; ++c) {
      if (std::find(label.begin(), label.end(), c) == label.end()) continue;
      const Blob b = FindBlob(seg, f, t, c, label);
      tracks[c].frames[t] = b;
      if (b.present) {
        ++tracks[c].present;
        tracks[c].mean_area += b.area;
      }
    }
  }
  std::vector<const Track*> detected;
  for (Track& track : tracks) {
    if (track.present > 0) track.mean_area /= track.present;
    if (track.present >= th.min_present_fraction * f.T) detected.push_back(&track);
  }
  score.detected_objects = static_cast<int>(detected.size());
  score.count_ok = detected.size() == scene.objects.size();

  // Match by colour first; leftover caption objects take leftover objects, largest first.
  std::vector<const Track*> match(scene.objects.size(), nullptr);
  std::vector<bool> used(detected.size(), false);
  for (size_t i = 0; i < scene.objects.size(); ++i) {
    for (size_t j = 0; j < detected.size(); ++j) {
      if (!used[j] && detected[j]->color == static_cast<int>(scene.objects[i].color)) {
        match[i] = detected[j];
        used[j] = true;
        break;
      }
    }
  }
  std::vector<size_t> order(detected.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return detected[a]->mean_area > detected[b]->mean_area;
  });
  for (size_t i = 0; i < scene.objects.size(); ++i) {
    if (match[i] != nullptr) continue;
    for (size_t j : order) {
      if (!used[j]) {
        match[i] = detected[j];
        used[j] = true;
        break;
      }
    }
  }

  score.color_ok = score.shape_ok = score.direction_ok = score.speed_ok = true;
  int found = 0;
  for (size_t i = 0; i < scene.objects.size(); ++i) {
    ObjectScore s;
    if (match[i] != nullptr) {
      s = Measure(*match[i], scene.objects[i], th);
      score.jerk += s.jerk;
      ++found;
    }
    score.color_ok &= s.color_ok;
    score.shape_ok &= s.shape_ok;
    score.direction_ok &= s.direction_ok;
    score.speed_ok &= s.speed_ok;
    score.objects.push_back(s);
  }
  if (found > 0) score.jerk /= found;
  score.adherent = score.background_ok && score.count_ok && score.color_ok && score.shape_ok &&
                   score.direction_ok && score.speed_ok;
  return score;
}

absl::StatusOr<VideoScore> ScoreVideo(const torch::Tensor& video, absl::string_view caption,
                                      const DetectorThresholds& thresholds) {
  absl::StatusOr<SceneDescription> scene = ParseCaption(caption);
  if (!scene.ok()) return scene.status();
  return ScoreVideo(video, *scene, thresholds);
}

}  // namespace tpdiff::train
