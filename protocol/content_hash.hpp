#pragma once
// The digest an annex key's backend names, computed incrementally over an object's
// content: MD5, SHA-1, SHA-2 and SHA-3 through GnuTLS, BLAKE2 (b, bp, s, sp at the
// lengths git-annex uses) through libb2.
#include <memory>
#include <optional>
#include <string>

#include "protocol/annex_key.hpp"
#include "protocol/bytes.hpp"

namespace annexswarm {

class ContentHash {
public:
  // Nothing for keys whose backend carries no computable digest (WORM, URL, SKEIN).
  static std::optional<ContentHash> start(HashAlgorithm algorithm);
  ContentHash(ContentHash&&) noexcept;
  ContentHash& operator=(ContentHash&&) noexcept;
  ~ContentHash();

  void update(ByteView bytes);
  // Lower-case hex, as in the key's name; the hash cannot be updated afterwards.
  std::string finish_hex();

  class Impl;

private:
  explicit ContentHash(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace annexswarm
