#include "tpdiff/media/zip.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tpdiff::media {
namespace {

// Field layout from PKWARE's APPNOTE.TXT, sections 4.3.7 (local header), 4.3.12 (central
// directory header) and 4.3.16 (end of central directory record).
constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndOfCentralDirSig = 0x06054b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndOfCentralDirSize = 22;
constexpr uint16_t kVersionStored = 10;  // "1.0": stored entries need nothing newer
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kDosDate1980 = (0 << 9) | (1 << 5) | 1;  // 1980-01-01, the earliest DOS date
constexpr uint16_t kFlagEncrypted = 1;
constexpr uint64_t kMax16 = std::numeric_limits<uint16_t>::max();
constexpr uint64_t kMax32 = std::numeric_limits<uint32_t>::max();

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>(v >> 8));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v & 0xFFFF));
  Put16(out, static_cast<uint16_t>(v >> 16));
}

uint32_t Crc32(const std::string& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; feed large entries in pieces.
  for (size_t off = 0; off < data.size();) {
    const uInt n = static_cast<uInt>(std::min<size_t>(data.size() - off, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + off), n);
    off += n;
  }
  return static_cast<uint32_t>(crc);
}

// The fields local and central headers share, from "version needed" to "extra length".
void PutCommonFields(std::string* out, const ZipEntry& e, uint32_t crc) {
  Put16(out, kVersionStored);
  Put16(out, 0);  // flags
  Put16(out, kMethodStored);
  Put16(out, 0);  // time 00:00:00
  Put16(out, kDosDate1980);
  Put32(out, crc);
  Put32(out, static_cast<uint32_t>(e.data.size()));  // compressed size
  Put32(out, static_cast<uint32_t>(e.data.size()));  // uncompressed size
  Put16(out, static_cast<uint16_t>(e.name.size()));
  Put16(out, 0);  // extra field length
}

// Bounds-checked little-endian reads; any read past the end marks the reader failed.
class Reader {
 public:
  Reader(const std::string& bytes, size_t pos) : bytes_(bytes), pos_(pos) {}
  uint16_t U16() {
    if (!Has(2)) return 0;
    const auto* p = reinterpret_cast<const unsigned char*>(bytes_.data() + pos_);
    pos_ += 2;
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
  }
  uint32_t U32() {
    const uint32_t lo = U16();
    return lo | (static_cast<uint32_t>(U16()) << 16);
  }
  std::string Bytes(size_t n) {
    if (!Has(n)) return "";
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void Skip(size_t n) {
    if (Has(n)) pos_ += n;
  }
  bool ok() const { return ok_; }

 private:
  bool Has(size_t n) {
    if (n > bytes_.size() || pos_ > bytes_.size() - n) ok_ = false;
    return ok_;
  }
  const std::string& bytes_;
  size_t pos_;
  bool ok_ = true;
};

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("bytes: not a readable ZIP archive: ", what));
}

}  // namespace

absl::StatusOr<std::string> WriteStoredZip(const ZipArchive& archive) {
  if (archive.entries.size() > kMax16) {
    return absl::InvalidArgumentError(
        absl::StrCat("entries: ", archive.entries.size(), " exceeds ZIP's maximum of ", kMax16));
  }
  if (archive.comment.size() > kMax16) {
    return absl::InvalidArgumentError(absl::StrCat("comment: ", archive.comment.size(),
                                                   " bytes exceeds ZIP's maximum of ", kMax16));
  }
  std::string out;
  std::string central;
  for (const ZipEntry& e : archive.entries) {
    if (e.name.empty() || e.name.size() > kMax16) {
      return absl::InvalidArgumentError(
          absl::StrCat("name: ", e.name.size(), " bytes must be in [1, ", kMax16, "]"));
    }
    if (e.data.size() >= kMax32 || out.size() >= kMax32) {
      return absl::InvalidArgumentError(
          absl::StrCat("data: entry ", e.name, " would pass ZIP's 4 GiB limit (no ZIP64)"));
    }
    const uint32_t crc = Crc32(e.data);
    const auto offset = static_cast<uint32_t>(out.size());
    Put32(&out, kLocalHeaderSig);
    PutCommonFields(&out, e, crc);
    out += e.name;
    out += e.data;

    Put32(&central, kCentralHeaderSig);
    Put16(&central, kVersionStored);  // version made by: MS-DOS attributes, spec 1.0
    PutCommonFields(&central, e, crc);
    Put16(&central, 0);  // comment length
    Put16(&central, 0);  // disk number
    Put16(&central, 0);  // internal attributes
    Put32(&central, 0);  // external attributes
    Put32(&central, offset);
    central += e.name;
  }
  if (out.size() + central.size() >= kMax32) {
    return absl::InvalidArgumentError("entries: the archive would pass ZIP's 4 GiB limit");
  }
  const auto central_offset = static_cast<uint32_t>(out.size());
  out += central;
  Put32(&out, kEndOfCentralDirSig);
  Put16(&out, 0);  // this disk
  Put16(&out, 0);  // disk with the central directory
  Put16(&out, static_cast<uint16_t>(archive.entries.size()));
  Put16(&out, static_cast<uint16_t>(archive.entries.size()));
  Put32(&out, static_cast<uint32_t>(central.size()));
  Put32(&out, central_offset);
  Put16(&out, static_cast<uint16_t>(archive.comment.size()));
  out += archive.comment;
  return out;
}

absl::StatusOr<ZipArchive> ReadStoredZip(const std::string& bytes) {
  if (bytes.size() < kEndOfCentralDirSize) return Malformed("shorter than an empty archive");
  // The end record sits before a comment of up to 64 KiB; search back for its signature.
  size_t eocd = std::string::npos;
  const size_t lowest = bytes.size() > kEndOfCentralDirSize + kMax16
                            ? bytes.size() - kEndOfCentralDirSize - kMax16
                            : 0;
  for (size_t pos = bytes.size() - kEndOfCentralDirSize + 1; pos-- > lowest;) {
    Reader r(bytes, pos);
    if (r.U32() != kEndOfCentralDirSig) continue;
    r.Skip(16);
    if (pos + kEndOfCentralDirSize + r.U16() == bytes.size()) {
      eocd = pos;
      break;
    }
  }
  if (eocd == std::string::npos) return Malformed("no end of central directory record");

  Reader end(bytes, eocd + 4);
  end.Skip(4);  // disk numbers
  end.Skip(2);  // entries on this disk
  const uint16_t count = end.U16();
  const uint32_t central_size = end.U32();
  const uint32_t central_offset = end.U32();
  const uint16_t comment_size = end.U16();
  ZipArchive archive;
  archive.comment = end.Bytes(comment_size);
  if (static_cast<uint64_t>(central_offset) + central_size > eocd) {
    return Malformed("central directory overlaps its end record");
  }

  Reader central(bytes, central_offset);
  for (int i = 0; i < count; ++i) {
    if (central.U32() != kCentralHeaderSig) return Malformed("bad central directory signature");
    central.Skip(4);  // versions
    const uint16_t flags = central.U16();
    const uint16_t method = central.U16();
    central.Skip(4);  // time, date
    const uint32_t crc = central.U32();
    const uint32_t compressed = central.U32();
    const uint32_t size = central.U32();
    const uint16_t name_size = central.U16();
    const uint16_t extra_size = central.U16();
    const uint16_t entry_comment_size = central.U16();
    central.Skip(8);  // disk, internal and external attributes
    const uint32_t offset = central.U32();
    ZipEntry entry;
    entry.name = central.Bytes(name_size);
    central.Skip(extra_size + entry_comment_size);
    if (!central.ok()) return Malformed("truncated central directory");
    if (method != kMethodStored || (flags & kFlagEncrypted) || compressed != size) {
      return absl::InvalidArgumentError(
          absl::StrCat("bytes: ZIP entry ", entry.name, " is compressed (method ", method,
                       ") or encrypted; ", "only stored entries are supported"));
    }

    Reader local(bytes, offset);
    if (local.U32() != kLocalHeaderSig) return Malformed("bad local header signature");
    local.Skip(kLocalHeaderSize - 8);  // to the name and extra lengths, the last fields
    const uint16_t local_name_size = local.U16();
    const uint16_t local_extra_size = local.U16();  // may differ from the central one
    local.Skip(local_name_size + local_extra_size);
    entry.data = local.Bytes(size);
    if (!local.ok()) return Malformed(absl::StrCat("entry ", entry.name, " is truncated"));
    if (Crc32(entry.data) != crc) {
      return absl::InvalidArgumentError(
          absl::StrCat("bytes: ZIP entry ", entry.name, " fails its CRC-32 check"));
    }
    archive.entries.push_back(std::move(entry));
  }
  return archive;
}

}  // namespace tpdiff::media
