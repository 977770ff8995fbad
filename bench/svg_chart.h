#ifndef TPDIFF_BENCH_SVG_CHART_H_
#define TPDIFF_BENCH_SVG_CHART_H_

#include <string>
#include <vector>

namespace tpdiff::bench {

struct Bar {
  std::string label;
  double value = 0;
  std::string note;  // printed after the value, e.g. "1.71x"
};

// A horizontal bar chart as a standalone SVG document (benchmark results people can look at).
std::string HorizontalBarChartSvg(const std::string& title, const std::string& unit,
                                  const std::vector<Bar>& bars);

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_SVG_CHART_H_
