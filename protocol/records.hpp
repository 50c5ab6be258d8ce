#pragma once
// Swarm records on the DHT. Each body is a msgpack array [version, kind, fields...],
// size-capped, then sealed with AES-256-GCM under the swarm's record key, with the DHT
// location as associated data (a record copied to another location does not open).
// The plaintext is the issue time (8 bytes, big-endian) and the body; the nonce is
// synthetic (HMAC under the swarm's nonce key of location, time and body).
// The node signs each value with its OpenDHT key (so only it can replace the value);
// the reader checks that the record's node id is the signer's.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/annex_key.hpp"
#include "protocol/bytes.hpp"
#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

inline constexpr std::uint32_t kRecordVersion = 1;
inline constexpr std::uint32_t kProtocolVersion = 1;
inline constexpr std::size_t kMaxKeyTags = 4000;  // per bucket record: 16M keys per repository
inline constexpr std::size_t kMaxRecordBody = kMaxKeyTags * 8 + 256;
inline constexpr std::size_t kMaxSealedRecord = kMaxRecordBody + 64;
inline constexpr std::size_t kMaxEndpoints = 16;

enum class RecordKind : std::uint32_t { Contact = 1, Repo = 2, ProviderBucket = 4, Rules = 5 };


// Candidate: a public address of the node's own not yet confirmed by a dial-back. Members
// never dial it; it is in the record so that a dial-back helper may (it dials only where
// the asker is seen or what its signed record names).
enum class EndpointKind { Loopback, Lan, Public, Mapped, Relay, Candidate };
std::string_view to_string(EndpointKind kind);
std::optional<EndpointKind> endpoint_kind_from_string(std::string_view text);

struct Endpoint {
  EndpointKind kind = EndpointKind::Lan;
  std::string host;  // an IP literal (for Relay: the relay's address)
  std::uint16_t port = 0;
  std::string via;   // Relay only: the relay's node id (hex)
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// Contact record capabilities.
inline constexpr std::uint32_t kCapabilityRelay = 1;  // relays circuits for members

// At node/<id> (and at the swarm's "nodes" location; a relay's also at "relays"): how
// to reach a node.
struct ContactRecord {
  NodeId node;
  std::uint32_t protocol_version = kProtocolVersion;
  std::uint32_t capabilities = 0;
  std::vector<Endpoint> endpoints;
  // Bytes this node offers the swarm's erasure-coded stores now (0: none); placement
  // never chooses a node for a share larger than its offer.
  std::uint64_t store_offer = 0;
  friend bool operator==(const ContactRecord&, const ContactRecord&) = default;
};

// At repo/<uuid>: which node serves that annex repository.
struct RepoRecord {
  NodeId node;
  std::string uuid;
  friend bool operator==(const RepoRecord&, const RepoRecord&) = default;
};

// At keys/<bucket>: the keys of one bucket that a node's repository holds, as sorted
// unique tags (see KeyIndex). One record per (node, repository, bucket) replaces the
// per-key records of the first design: a node announces at most kKeyBuckets records
// whatever its key count, and a dropped key is a new version of its bucket's record.
struct ProviderBucketRecord {
  NodeId node;
  std::string repo_uuid;
  std::uint32_t bucket = 0;
  std::vector<std::uint64_t> tags;
  bool holds(std::uint64_t tag) const;
  friend bool operator==(const ProviderBucketRecord&, const ProviderBucketRecord&) = default;
};

// At rules: the swarm rules a member holds (an OpenPGP clear-signed document) and the
// public keys that came with it. Every member that adopted a version publishes it, so a
// version spreads and stays while any member holds it; readers check the signature.
inline constexpr std::size_t kMaxRulesDocument = 12 * 1024;
inline constexpr std::size_t kMaxRulesKeys = 16 * 1024;
struct RulesRecord {
  NodeId node;
  std::string document;
  std::string public_keys;
  friend bool operator==(const RulesRecord&, const RulesRecord&) = default;
};

Bytes encode(const ContactRecord& record);
Bytes encode(const RepoRecord& record);
Bytes encode(const ProviderBucketRecord& record);
Bytes encode(const RulesRecord& record);

Result<ContactRecord> decode_contact(ByteView body);
Result<RepoRecord> decode_repo(ByteView body);
Result<ProviderBucketRecord> decode_provider_bucket(ByteView body);
Result<RulesRecord> decode_rules(ByteView body);

// A sealed record carries the time it was issued (Unix seconds) inside the ciphertext,
// so a reader can refuse one replayed after its lifetime; the time is chosen by the
// signer and is only as good as its clock (readers allow kRecordClockSkew).
inline constexpr std::uint64_t kRecordClockSkew = 300;  // seconds
struct OpenedRecord {
  Bytes body;
  std::uint64_t issued_at = 0;
};
Bytes seal_record(const SwarmToken& swarm, const DhtLocation& location, ByteView body, std::uint64_t issued_at);
Result<OpenedRecord> open_record(const SwarmToken& swarm, const DhtLocation& location, ByteView sealed);

}  // namespace annexswarm
