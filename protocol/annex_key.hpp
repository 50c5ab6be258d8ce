#pragma once
// git-annex keys: BACKEND[-sSIZE][-mMTIME][-SCHUNKSIZE-CCHUNKNUM]--NAME.
// Keys arrive from the network, the DHT and git-annex, so parsing is strict: a key we
// accept is always safe to use as one path component.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.hpp"

namespace annexswarm {

enum class HashAlgorithm {
  None,  // WORM, URL and other backends whose name carries no content hash
  Md5,
  Sha1,
  Sha224,
  Sha256,
  Sha384,
  Sha512,
  Sha3_224,
  Sha3_256,
  Sha3_384,
  Sha3_512,
  Blake2b160,
  Blake2b224,
  Blake2b256,
  Blake2b384,
  Blake2b512,
  Blake2bp512,
  Blake2s160,
  Blake2s224,
  Blake2s256,
  Blake2sp224,
  Blake2sp256,
  Other,  // a hash backend (SKEIN) we recognise but cannot compute
};

// A git-annex repository UUID (8-4-4-4-12 hex digits).
bool is_annex_uuid(std::string_view text);

// Our own keys for the shares of erasure-coded objects: SWARMSHARE-sSIZE--ROOT, where ROOT
// is the share's manifest root (SHA-256 over the SHA-256 of each 1 MiB chunk). A share is
// stored, announced, served and removed like any object; it is checked against its
// manifest, whose root its name pins.
inline constexpr std::string_view kShareBackend = "SWARMSHARE";

class AnnexKey {
public:
  static constexpr std::size_t kMaxLength = 1024;

  static Result<AnnexKey> parse(std::string_view text);

  const std::string& str() const { return text_; }
  std::string_view backend() const { return std::string_view(text_).substr(0, backend_len_); }
  std::string_view name() const { return std::string_view(text_).substr(name_pos_); }
  std::optional<std::uint64_t> size() const { return size_; }
  std::optional<std::uint64_t> mtime() const { return mtime_; }
  std::optional<std::uint64_t> chunk_size() const { return chunk_size_; }
  std::optional<std::uint64_t> chunk_number() const { return chunk_number_; }
  HashAlgorithm hash() const { return hash_; }
  // The content digest the name carries, in lower-case hex; empty when unverifiable.
  std::string_view digest_hex() const;
  // A chunk of an object (git-annex's chunked special remotes): its digest and size
  // fields describe the whole object.
  bool is_chunk() const { return chunk_number_.has_value(); }
  // True when the bytes stored under this key can be checked against its digest.
  bool verifiable() const { return hash_ != HashAlgorithm::None && hash_ != HashAlgorithm::Other && !is_chunk(); }
  bool is_share() const { return backend() == kShareBackend; }
  // A download under this key can be checked: against its digest, or (a share) against
  // the manifest root its name pins.
  bool checkable() const { return verifiable() || is_share(); }
  // A share key's manifest root, in lower-case hex; empty for other keys.
  std::string_view share_root_hex() const { return is_share() ? name() : std::string_view(); }
  // How many bytes are stored under this key, when the key says.
  std::optional<std::uint64_t> content_size() const;
  // Keys whose content git-annex checks itself once it has it (chunks, after it joins
  // them; GPGHMAC keys of encrypted remotes, after it decrypts them).
  bool checked_by_annex() const { return is_chunk() || backend().starts_with("GPGHMAC"); }

  // git-annex object directories (.git/annex/objects/<dir>/KEY/KEY): hashdirmixed is
  // used by non-bare repositories, hashdirlower by bare ones and special remotes.
  std::string hash_dir_mixed() const;
  std::string hash_dir_lower() const;

  friend bool operator==(const AnnexKey& a, const AnnexKey& b) { return a.text_ == b.text_; }
  friend auto operator<=>(const AnnexKey& a, const AnnexKey& b) { return a.text_ <=> b.text_; }

private:
  std::string object_hash_input() const;

  std::string text_;
  std::size_t backend_len_ = 0;
  std::size_t name_pos_ = 0;
  std::size_t digest_len_ = 0;
  std::optional<std::uint64_t> size_, mtime_, chunk_size_, chunk_number_;
  HashAlgorithm hash_ = HashAlgorithm::None;
};

}  // namespace annexswarm
