#ifndef TPDIFF_SPEC_STATUS_MACROS_H_
#define TPDIFF_SPEC_STATUS_MACROS_H_

#include "absl/status/status.h"

// Returns the status of `expr` from the enclosing function unless it is OK. For .cc files only:
// public headers do not include this file.
#define TPDIFF_RETURN_IF_ERROR(expr) \
  do {                               \
    const absl::Status _st = (expr); \
    if (!_st.ok()) return _st;       \
  } while (0)

#endif  // TPDIFF_SPEC_STATUS_MACROS_H_
