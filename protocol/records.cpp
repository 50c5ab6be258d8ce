#include "protocol/records.hpp"

#include "protocol/msgpack_fields.hpp"

#include <algorithm>
#include <array>

#include "protocol/crypto.hpp"

namespace annexswarm {
namespace {

constexpr std::array<std::uint8_t, 3> kSealMagic{'A', 'S', 2};  // 2: with the issue time

// Limits for the msgpack parser: no record needs more, so hostile input cannot make
// the parser allocate much.
const msgpack::unpack_limit kRecordLimits(/*array*/ 64, /*map*/ 0, /*str*/ 1100,
                                          /*bin*/ kMaxKeyTags * 8, /*ext*/ 0, /*depth*/ 4);

using detail::FieldReader;
using detail::finish;
using detail::Packer;

void pack_header(Packer& pk, RecordKind kind, std::uint32_t fields) {
  pk.pack_array(2 + fields);
  pk.pack(kRecordVersion);
  pk.pack(static_cast<std::uint32_t>(kind));
}

void pack_node(Packer& pk, const NodeId& node) { detail::pack_bin(pk, node.bytes); }

std::optional<NodeId> read_node(const FieldReader& r, std::size_t i) {
  auto bin = r.bin(i, 20);
  if (!bin || bin->size() != 20) return std::nullopt;
  NodeId id;
  std::copy(bin->begin(), bin->end(), id.bytes.begin());
  return id;
}

// Parses the envelope [version, kind, ...] and hands the array to `fields`.
template <class Record, class Fn>
Result<Record> decode_with(ByteView body, RecordKind kind, std::size_t field_count,
                           std::string_view what, Fn&& fields) {
  std::string label = std::string(what) + " record";
  if (body.size() > kMaxRecordBody) return Error{label + " is oversized"};
  return detail::unpack_array<Record>(body, kRecordLimits, label, [&](const FieldReader& r) -> Result<Record> {
    auto version = r.uint(0);
    if (!version || *version != kRecordVersion) return Error{label + " has an unsupported version"};
    if (r.size() < 2) return Error{label + " is not a record"};
    auto k = r.uint(1);
    if (!k || *k != static_cast<std::uint32_t>(kind)) return Error{label + " has the wrong kind"};
    // Fields a newer version appends are skipped; fewer than this version knows is an error.
    if (r.size() < 2 + field_count) return Error{label + " has the wrong number of fields"};
    return fields(r);
  });
}

}  // namespace

std::string_view to_string(EndpointKind kind) {
  switch (kind) {
    case EndpointKind::Loopback: return "loopback";
    case EndpointKind::Lan: return "lan";
    case EndpointKind::Public: return "public";
    case EndpointKind::Mapped: return "mapped";
    case EndpointKind::Relay: return "relay";
    case EndpointKind::Candidate: return "candidate";
  }
  return "unknown";
}

std::optional<EndpointKind> endpoint_kind_from_string(std::string_view text) {
  for (auto k : {EndpointKind::Loopback, EndpointKind::Lan, EndpointKind::Public,
                 EndpointKind::Mapped, EndpointKind::Relay, EndpointKind::Candidate})
    if (to_string(k) == text) return k;
  return std::nullopt;
}

Bytes encode(const ContactRecord& record) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pack_header(pk, RecordKind::Contact, 5);
  pack_node(pk, record.node);
  pk.pack(record.protocol_version);
  pk.pack(record.capabilities);
  auto count = std::min(record.endpoints.size(), kMaxEndpoints);
  pk.pack_array(static_cast<std::uint32_t>(count));
  for (std::size_t i = 0; i < count; ++i) {
    const auto& ep = record.endpoints[i];
    bool relay = ep.kind == EndpointKind::Relay;
    pk.pack_array(relay ? 4 : 3);
    pk.pack(std::string(to_string(ep.kind)));
    pk.pack(ep.host);
    pk.pack(ep.port);
    if (relay) pk.pack(ep.via);
  }
  pk.pack(record.store_offer);
  return finish(buf);
}

Bytes encode(const RepoRecord& record) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pack_header(pk, RecordKind::Repo, 2);
  pack_node(pk, record.node);
  pk.pack(record.uuid);
  return finish(buf);
}

Bytes encode(const RulesRecord& record) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pack_header(pk, RecordKind::Rules, 3);
  pack_node(pk, record.node);
  detail::pack_bin(pk, as_bytes(record.document));
  detail::pack_bin(pk, as_bytes(record.public_keys));
  return finish(buf);
}

bool ProviderBucketRecord::holds(std::uint64_t tag) const {
  return std::binary_search(tags.begin(), tags.end(), tag);
}

Bytes encode(const ProviderBucketRecord& record) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pack_header(pk, RecordKind::ProviderBucket, 4);
  pack_node(pk, record.node);
  pk.pack(record.repo_uuid);
  pk.pack(record.bucket);
  // Tags as one big-endian blob: compact, and parsed without per-element overhead.
  auto count = std::min(record.tags.size(), kMaxKeyTags);
  std::string blob(count * 8, '\0');
  for (std::size_t i = 0; i < count; ++i)
    for (int b = 0; b < 8; ++b) blob[i * 8 + b] = static_cast<char>(record.tags[i] >> (56 - 8 * b));
  detail::pack_bin(pk, as_bytes(blob));
  return finish(buf);
}

Result<ContactRecord> decode_contact(ByteView body) {
  return decode_with<ContactRecord>(body, RecordKind::Contact, 4, "contact",
                                    [](const FieldReader& r) -> Result<ContactRecord> {
    ContactRecord rec;
    auto node = read_node(r, 2);
    if (!node) return r.fail("node id");
    rec.node = *node;
    auto proto = r.uint(3);
    auto caps = r.uint(4);
    if (!proto || *proto > UINT32_MAX) return r.fail("protocol version");
    if (!caps || *caps > UINT32_MAX) return r.fail("capabilities");
    rec.protocol_version = static_cast<std::uint32_t>(*proto);
    rec.capabilities = static_cast<std::uint32_t>(*caps);
    const auto& eps = r.at(5);
    if (eps.type != msgpack::type::ARRAY || eps.via.array.size > kMaxEndpoints)
      return r.fail("endpoint list");
    for (std::uint32_t i = 0; i < eps.via.array.size; ++i) {
      const auto& e = eps.via.array.ptr[i];
      if (e.type != msgpack::type::ARRAY || e.via.array.size < 3 || e.via.array.size > 4) return r.fail("endpoint");
      FieldReader er(e, "contact record");
      auto kind_text = er.str(0, 16);
      auto host = er.str(1, 64);
      auto port = er.uint(2);
      if (!kind_text || !host || host->empty() || !port || *port == 0 || *port > 65535)
        return r.fail("endpoint");
      auto kind = endpoint_kind_from_string(*kind_text);
      if (!kind) continue;  // a kind from a newer version: skip it, keep the rest
      std::string via;
      if (*kind == EndpointKind::Relay) {
        auto v = e.via.array.size == 4 ? er.str(3, 40) : std::nullopt;
        if (!v || !NodeId::from_hex(*v)) return r.fail("relay endpoint");
        via = *v;
      }
      rec.endpoints.push_back({*kind, *host, static_cast<std::uint16_t>(*port), via});
    }
    if (r.size() > 6) {  // absent in records of versions before erasure-coded stores
      auto offer = r.uint(6);
      if (!offer) return r.fail("store offer");
      rec.store_offer = *offer;
    }
    return rec;
  });
}

Result<RepoRecord> decode_repo(ByteView body) {
  return decode_with<RepoRecord>(body, RecordKind::Repo, 2, "repo",
                                 [](const FieldReader& r) -> Result<RepoRecord> {
    RepoRecord rec;
    auto node = read_node(r, 2);
    auto uuid = r.str(3, 64);
    if (!node) return r.fail("node id");
    if (!uuid || !is_annex_uuid(*uuid)) return r.fail("repository uuid");
    rec.node = *node;
    rec.uuid = *uuid;
    return rec;
  });
}

Result<RulesRecord> decode_rules(ByteView body) {
  return decode_with<RulesRecord>(body, RecordKind::Rules, 3, "rules", [](const FieldReader& r) -> Result<RulesRecord> {
    RulesRecord rec;
    auto node = read_node(r, 2);
    auto document = r.bin(3, kMaxRulesDocument);
    auto keys = r.bin(4, kMaxRulesKeys);
    if (!node) return r.fail("node id");
    if (!document || document->empty()) return r.fail("document");
    if (!keys) return r.fail("public keys");
    rec.node = *node;
    rec.document.assign(document->begin(), document->end());
    rec.public_keys.assign(keys->begin(), keys->end());
    return rec;
  });
}

Result<ProviderBucketRecord> decode_provider_bucket(ByteView body) {
  return decode_with<ProviderBucketRecord>(body, RecordKind::ProviderBucket, 4, "provider",
                                           [](const FieldReader& r) -> Result<ProviderBucketRecord> {
    ProviderBucketRecord rec;
    auto node = read_node(r, 2);
    auto uuid = r.str(3, 64);
    auto bucket = r.uint(4);
    if (!node) return r.fail("node id");
    if (!uuid || !is_annex_uuid(*uuid)) return r.fail("repository uuid");
    if (!bucket || *bucket >= kKeyBuckets) return r.fail("bucket");
    rec.node = *node;
    rec.repo_uuid = *uuid;
    rec.bucket = static_cast<std::uint32_t>(*bucket);
    auto blob = r.bin(5, kMaxKeyTags * 8);
    if (!blob || blob->size() % 8 != 0) return r.fail("key tag list");
    const auto* p = blob->data();
    rec.tags.resize(blob->size() / 8);
    for (std::size_t i = 0; i < rec.tags.size(); ++i) {
      std::uint64_t t = 0;
      for (int b = 0; b < 8; ++b) t = (t << 8) | p[i * 8 + b];
      // Sorted and unique, so lookups can binary-search and hostile lists stay honest.
      if (i > 0 && t <= rec.tags[i - 1]) return r.fail("key tag list (not sorted)");
      rec.tags[i] = t;
    }
    return rec;
  });
}

Bytes seal_record(const SwarmToken& swarm, const DhtLocation& location, ByteView body, std::uint64_t issued_at) {
  Bytes plain(8);
  for (int b = 0; b < 8; ++b) plain[b] = static_cast<std::uint8_t>(issued_at >> (56 - 8 * b));
  plain.insert(plain.end(), body.begin(), body.end());
  Bytes nonce_input(location.bytes.begin(), location.bytes.end());
  nonce_input.insert(nonce_input.end(), plain.begin(), plain.end());
  auto mac = crypto::hmac_sha256(swarm.nonce_key(), nonce_input);
  crypto::AeadNonce nonce;
  std::copy_n(mac.begin(), nonce.size(), nonce.begin());

  Bytes out(kSealMagic.begin(), kSealMagic.end());
  out.insert(out.end(), nonce.begin(), nonce.end());
  auto sealed = crypto::aead_seal(swarm.record_key(), nonce, location.bytes, plain);
  out.insert(out.end(), sealed.begin(), sealed.end());
  return out;
}

Result<OpenedRecord> open_record(const SwarmToken& swarm, const DhtLocation& location, ByteView sealed) {
  constexpr std::size_t header = kSealMagic.size() + crypto::kAeadNonceSize;
  if (sealed.size() > kMaxSealedRecord) return Error{"sealed record is oversized"};
  if (sealed.size() < header + 8 + crypto::kAeadTagSize) return Error{"sealed record is truncated"};
  if (!std::equal(kSealMagic.begin(), kSealMagic.end(), sealed.begin()))
    return Error{"not an annex-swarm record (or one from an older version)"};
  crypto::AeadNonce nonce;
  std::copy_n(sealed.begin() + kSealMagic.size(), nonce.size(), nonce.begin());
  auto plain = crypto::aead_open(swarm.record_key(), nonce, location.bytes, sealed.subspan(header));
  if (!plain) return Error{"record does not open with this swarm's key"};
  OpenedRecord out;
  for (int b = 0; b < 8; ++b) out.issued_at = (out.issued_at << 8) | (*plain)[b];
  out.body.assign(plain->begin() + 8, plain->end());
  return out;
}

}  // namespace annexswarm
