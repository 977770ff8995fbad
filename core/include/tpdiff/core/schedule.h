#ifndef TPDIFF_CORE_SCHEDULE_H_
#define TPDIFF_CORE_SCHEDULE_H_

// The noise schedules are defined in the LibTorch-free spec library (the front validates
// manifests and requests with them); the method refers to them by these names.

#include "tpdiff/spec/schedule.h"

namespace tpdiff::core {

using spec::NoiseSchedule;
using spec::Parameterization;
using spec::Prediction;
using spec::ParameterizationName;
using spec::ParseParameterization;

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_SCHEDULE_H_
