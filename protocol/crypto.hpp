#pragma once
// Thin, allocation-light wrappers over GnuTLS's crypto (nettle underneath: hashed at
// library speed, never by shelling out).
#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "protocol/bytes.hpp"

namespace annexswarm::crypto {

using Sha256Digest = std::array<std::uint8_t, 32>;
using Md5Digest = std::array<std::uint8_t, 16>;

Sha256Digest sha256(ByteView data);
Sha256Digest hmac_sha256(ByteView key, ByteView message);
Md5Digest md5(ByteView data);

void random_fill(std::span<std::uint8_t> out);

// AES-256-GCM. The sealed form is ciphertext followed by the 16-byte tag.
inline constexpr std::size_t kAeadKeySize = 32;
inline constexpr std::size_t kAeadNonceSize = 12;
inline constexpr std::size_t kAeadTagSize = 16;
using AeadKey = std::array<std::uint8_t, kAeadKeySize>;
using AeadNonce = std::array<std::uint8_t, kAeadNonceSize>;

Bytes aead_seal(const AeadKey& key, const AeadNonce& nonce, ByteView aad, ByteView plaintext);
// nullopt when the tag does not verify (wrong key, tampered bytes, wrong aad).
std::optional<Bytes> aead_open(const AeadKey& key, const AeadNonce& nonce, ByteView aad,
                               ByteView sealed);

}  // namespace annexswarm::crypto
