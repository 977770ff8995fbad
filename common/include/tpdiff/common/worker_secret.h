#ifndef TPDIFF_COMMON_WORKER_SECRET_H_
#define TPDIFF_COMMON_WORKER_SECRET_H_

// How the shared worker secret travels (docs/security.md); the front checks what the worker
// sends, so both sides use these names.

namespace tpdiff::common {

// Metadata key that carries the worker secret on WorkerGateway.Connect.
inline constexpr char kWorkerSecretMetadata[] = "tpdiff-worker-secret";
// Environment variable a worker reads its secret from when it has no --worker-secret-file
// (how the front's local mode hands its generated secret to the worker children).
inline constexpr char kWorkerSecretEnv[] = "TPDIFF_WORKER_SECRET";

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_WORKER_SECRET_H_
