#ifndef TPDIFF_CORE_STAGE_PLAN_H_
#define TPDIFF_CORE_STAGE_PLAN_H_

// Stage plans are defined in the LibTorch-free spec library (a manifest's stages, steps and
// boundaries must form one); the method refers to them by these names.

#include "tpdiff/core/schedule.h"
#include "tpdiff/spec/stage_plan.h"

namespace tpdiff::core {

using spec::Stage;
using spec::StagePlan;
using spec::StagePlanOptions;

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_STAGE_PLAN_H_
