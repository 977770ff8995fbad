#ifndef TPDIFF_TESTS_UNIT_MODEL_REMOVE_TREE_H_
#define TPDIFF_TESTS_UNIT_MODEL_REMOVE_TREE_H_

#include <ftw.h>
#include <stdio.h>

#include <string>

namespace tpdiff::testing {

// Recursive delete for test folders. Not std::filesystem::remove_all: pip LibTorch 2.x's
// libtorch.so exports its own std::filesystem symbols, and remove_all resolved to that copy
// crashed (null call) on the GPU machine.
inline void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); },
      16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace tpdiff::testing

#endif  // TPDIFF_TESTS_UNIT_MODEL_REMOVE_TREE_H_
