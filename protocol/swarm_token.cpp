#include "protocol/swarm_token.hpp"

#include <algorithm>
#include <cstring>

#include "protocol/annex_key.hpp"

namespace annexswarm {
namespace {
constexpr std::string_view kTokenPrefix = "swarm1-";
constexpr std::size_t kChecksumSize = 4;

std::array<std::uint8_t, kChecksumSize> checksum(const SwarmToken::Secret& secret) {
  auto digest = crypto::hmac_sha256(as_bytes("annex-swarm token checksum"), secret);
  std::array<std::uint8_t, kChecksumSize> out;
  std::copy_n(digest.begin(), kChecksumSize, out.begin());
  return out;
}
}  // namespace

Result<NodeId> NodeId::from_hex(std::string_view hex) {
  auto bytes = annexswarm::from_hex(hex);
  if (!bytes || bytes->size() != 20) return Error{"not a node id (40 hex digits): '" + std::string(hex) + "'"};
  NodeId id;
  std::copy(bytes->begin(), bytes->end(), id.bytes.begin());
  return id;
}

SwarmToken::SwarmToken(const Secret& secret) : secret_(secret) {
  auto key = crypto::hmac_sha256(secret_, as_bytes("annex-swarm record key v2"));
  std::copy(key.begin(), key.end(), record_key_.begin());
  nonce_key_ = crypto::hmac_sha256(secret_, as_bytes("annex-swarm record nonce key v1"));
  proof_key_ = crypto::hmac_sha256(secret_, as_bytes("annex-swarm membership proof key v1"));
}

SwarmToken SwarmToken::generate() {
  Secret secret;
  crypto::random_fill(secret);
  return SwarmToken(secret);
}

SwarmToken SwarmToken::public_swarm() {
  auto digest = crypto::sha256(as_bytes("annex-swarm public swarm v1"));
  Secret secret;
  std::copy(digest.begin(), digest.end(), secret.begin());
  return SwarmToken(secret);
}

Result<SwarmToken> SwarmToken::parse(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text == "public") return public_swarm();
  if (!text.starts_with(kTokenPrefix))
    return Error{"not a swarm token (it should start with '" + std::string(kTokenPrefix) +
                 "'; make one with 'annex-swarm swarm new')"};
  auto raw = from_base32(text.substr(kTokenPrefix.size()));
  if (!raw || raw->size() != kSecretSize + kChecksumSize)
    return Error{"swarm token is malformed or truncated; copy it again in full"};
  Secret secret;
  std::copy_n(raw->begin(), kSecretSize, secret.begin());
  auto expected = checksum(secret);
  if (!std::equal(expected.begin(), expected.end(), raw->begin() + kSecretSize))
    return Error{"swarm token checksum does not match (a typo?); copy it again in full"};
  return SwarmToken(secret);
}

std::string SwarmToken::str() const {
  Bytes raw(secret_.begin(), secret_.end());
  auto sum = checksum(secret_);
  raw.insert(raw.end(), sum.begin(), sum.end());
  return std::string(kTokenPrefix) + to_base32(raw);
}

bool SwarmToken::is_public() const { return *this == public_swarm(); }

std::string SwarmToken::id() const {
  auto digest = crypto::hmac_sha256(secret_, as_bytes("annex-swarm swarm id"));
  return to_hex(ByteView(digest.data(), 4));
}

Bytes SwarmToken::store_capability(std::string_view store_uuid) const {
  auto digest = crypto::hmac_sha256(secret_, as_bytes("annex-swarm store write/" + std::string(store_uuid)));
  return Bytes(digest.begin(), digest.end());
}

std::string SwarmToken::public_id() const {
  auto digest = crypto::hmac_sha256(secret_, as_bytes("annex-swarm public swarm id"));
  return to_hex(ByteView(digest.data(), 16));
}

DhtLocation SwarmToken::location(std::string_view label) const {
  auto digest = crypto::hmac_sha256(secret_, as_bytes(label));
  DhtLocation loc;
  std::copy_n(digest.begin(), loc.bytes.size(), loc.bytes.begin());
  return loc;
}

DhtLocation SwarmToken::node_location(const NodeId& node) const {
  return location("node/" + node.hex());
}
DhtLocation SwarmToken::repo_location(std::string_view annex_uuid) const {
  return location("repo/" + std::string(annex_uuid));
}
KeyIndex SwarmToken::key_index(const AnnexKey& key) const {
  auto digest = crypto::hmac_sha256(secret_, as_bytes("key/" + key.str()));
  KeyIndex index;
  std::memcpy(&index.tag, digest.data(), sizeof index.tag);
  std::uint32_t b = 0;
  std::memcpy(&b, digest.data() + 8, sizeof b);
  index.bucket = b % kKeyBuckets;
  return index;
}

DhtLocation SwarmToken::bucket_location(std::uint32_t bucket) const {
  return location("keys/" + std::to_string(bucket));
}
DhtLocation SwarmToken::nodes_location() const { return location("nodes"); }
DhtLocation SwarmToken::relays_location() const { return location("relays"); }
DhtLocation SwarmToken::rules_location() const { return location("rules"); }

std::uint64_t SwarmToken::value_id(std::string_view what) const {
  auto digest = crypto::hmac_sha256(secret_, as_bytes("value-id/" + std::string(what)));
  std::uint64_t id = 0;
  std::memcpy(&id, digest.data(), sizeof id);
  // OpenDHT reserves 0 as "no id".
  return id == 0 ? 1 : id;
}

}  // namespace annexswarm
