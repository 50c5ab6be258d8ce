#pragma once
// A swarm is named by a token holding a 32-byte secret. Everything a swarm puts on the
// DHT is derived from that secret, so outsiders can neither read its records nor tell
// which annex keys or repositories it holds, nor link two of its records.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/bytes.hpp"
#include "protocol/crypto.hpp"
#include "protocol/result.hpp"

namespace annexswarm {

class AnnexKey;

// A 20-byte DHT location (an OpenDHT InfoHash), always derived, never raw.
struct DhtLocation {
  std::array<std::uint8_t, 20> bytes{};
  std::string hex() const { return to_hex(bytes); }
  friend bool operator==(const DhtLocation&, const DhtLocation&) = default;
};

// A node's id: the id of its OpenDHT public key (= its TLS certificate's key).
struct NodeId {
  std::array<std::uint8_t, 20> bytes{};
  std::string hex() const { return to_hex(bytes); }
  static Result<NodeId> from_hex(std::string_view hex);
  friend bool operator==(const NodeId&, const NodeId&) = default;
  friend auto operator<=>(const NodeId&, const NodeId&) = default;
};

// Where a key's provider records live: one of kKeyBuckets bucket locations, and an
// 8-byte tag that names the key inside that bucket. Both come from one HMAC under the
// swarm secret, so neither reveals the key to anyone outside the swarm.
inline constexpr std::uint32_t kKeyBuckets = 4096;
struct KeyIndex {
  std::uint32_t bucket = 0;
  std::uint64_t tag = 0;
  friend bool operator==(const KeyIndex&, const KeyIndex&) = default;
  friend auto operator<=>(const KeyIndex&, const KeyIndex&) = default;
};

class SwarmToken {
public:
  static constexpr std::size_t kSecretSize = 32;
  using Secret = std::array<std::uint8_t, kSecretSize>;

  static SwarmToken generate();
  // The well-known swarm for public data sets: anyone can read and join it.
  static SwarmToken public_swarm();
  static Result<SwarmToken> parse(std::string_view text);

  // "swarm1-" + base32(secret + 4-byte checksum): a typo is caught, not joined.
  std::string str() const;
  bool is_public() const;
  // A short name that is safe to print and log; it does not reveal the secret.
  std::string id() const;
  // The swarm's public name (32 hex digits): what a git-annex remote's config keeps in
  // the git-annex branch instead of the token. Knowing it gives no access to the swarm.
  std::string public_id() const;

  DhtLocation location(std::string_view label) const;
  DhtLocation node_location(const NodeId& node) const;
  DhtLocation repo_location(std::string_view annex_uuid) const;
  KeyIndex key_index(const AnnexKey& key) const;
  DhtLocation bucket_location(std::uint32_t bucket) const;
  DhtLocation nodes_location() const;
  DhtLocation relays_location() const;
  DhtLocation rules_location() const;

  // The write capability of swarm store `store_uuid` (32 bytes): REMOVE must carry it.
  Bytes store_capability(std::string_view store_uuid) const;

  // Keys derived from the secret, one per use, so no two uses share a key: sealing
  // record bodies (AES-256-GCM), making their synthetic nonces, and the membership
  // proof of a peer link.
  const crypto::AeadKey& record_key() const { return record_key_; }
  const crypto::Sha256Digest& nonce_key() const { return nonce_key_; }
  const crypto::Sha256Digest& proof_key() const { return proof_key_; }
  // A per-swarm name (64 bits) for one publisher's record slot, e.g. "contact/<node>".
  // Every member can compute it, so it is not the DHT value id itself: the publisher
  // mixes it with a secret of its own (see SwarmDirectory).
  std::uint64_t value_id(std::string_view what) const;

  friend bool operator==(const SwarmToken& a, const SwarmToken& b) { return a.secret_ == b.secret_; }

private:
  explicit SwarmToken(const Secret& secret);
  Secret secret_{};
  crypto::AeadKey record_key_{};
  crypto::Sha256Digest nonce_key_{};
  crypto::Sha256Digest proof_key_{};
};

}  // namespace annexswarm
