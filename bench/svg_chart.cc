#include "svg_chart.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace tpdiff::bench {

std::string HorizontalBarChartSvg(const std::string& title, const std::string& unit,
                                  const std::vector<Bar>& bars) {
  const int label_w = 220, bar_w = 420, row_h = 34, top = 48;
  const int width = label_w + bar_w + 160, height = top + row_h * static_cast<int>(bars.size()) + 20;
  double max_value = 0;
  for (const Bar& b : bars) max_value = std::max(max_value, b.value);
  if (max_value <= 0) max_value = 1;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "font-family=\"sans-serif\" font-size=\"14\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n<text x=\"12\" y=\"28\" font-size=\"17\" font-weight=\"bold\">%s</text>\n",
      width, height, title);
  const char* colors[] = {"#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2"};
  for (size_t i = 0; i < bars.size(); ++i) {
    const int y = top + static_cast<int>(i) * row_h;
    const int w = static_cast<int>(bar_w * bars[i].value / max_value);
    absl::StrAppendFormat(&svg, "<text x=\"12\" y=\"%d\">%s</text>\n", y + 20, bars[i].label);
    absl::StrAppendFormat(&svg, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"24\" fill=\"%s\"/>\n",
                          label_w, y + 4, std::max(w, 1), colors[i % 6]);
    absl::StrAppendFormat(&svg, "<text x=\"%d\" y=\"%d\">%.3f %s %s</text>\n", label_w + w + 8,
                          y + 20, bars[i].value, unit, bars[i].note);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace tpdiff::bench
