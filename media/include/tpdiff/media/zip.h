#ifndef TPDIFF_MEDIA_ZIP_H_
#define TPDIFF_MEDIA_ZIP_H_

// A minimal ZIP container: stored (uncompressed) entries only, no ZIP64. Enough for PNG
// frame archives, whose entries are already deflated; every unzip tool reads them.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tpdiff::media {

struct ZipEntry {
  std::string name;
  std::string data;
};

struct ZipArchive {
  std::vector<ZipEntry> entries;  // in central-directory order
  std::string comment;
};

// Writes a stored ZIP with CRC-32s and a fixed timestamp (1980-01-01), so the output is
// byte-for-byte reproducible. INVALID_ARGUMENT when a name, the comment, an entry or the
// archive exceeds what ZIP without ZIP64 holds (65535 entries, 4 GiB).
absl::StatusOr<std::string> WriteStoredZip(const ZipArchive& archive);

// Reads an archive written by WriteStoredZip (or any stored, non-ZIP64 ZIP). INVALID_ARGUMENT
// for a truncated or malformed archive, a CRC mismatch or a compressed entry.
absl::StatusOr<ZipArchive> ReadStoredZip(const std::string& bytes);

}  // namespace tpdiff::media

#endif  // TPDIFF_MEDIA_ZIP_H_
