#ifndef TPDIFF_CORE_SRC_CPU_FEATURES_H_
#define TPDIFF_CORE_SRC_CPU_FEATURES_H_
// What the CPU kernels (cpu_attention.cc, cpu_modulation.cc) may use, asked once per process.
// They build their loops twice, for baseline x86-64 and with target("avx2,fma"), and pick at
// run time rather than with target_clones: an ifunc resolver runs during dynamic relocation,
// before a sanitizer runtime is up, and crashed the TSan build.

namespace tpdiff::model {

inline bool CpuHasAvx2Fma() {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
#else
  return false;
#endif
}

}  // namespace tpdiff::model

#endif  // TPDIFF_CORE_SRC_CPU_FEATURES_H_
