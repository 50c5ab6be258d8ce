#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include "node/dht_node.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/bytes.hpp"
#include "protocol/records.hpp"

using namespace annexswarm;

namespace {
const std::string kUuid = "bda09b6b-160b-4c29-a3e1-697e0686ed3a";
const std::string kKey = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";

NodeId node(std::uint8_t fill) {
  NodeId n;
  n.bytes.fill(fill);
  return n;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(records)

BOOST_AUTO_TEST_CASE(provider_bucket_record_has_golden_bytes) {
  ProviderBucketRecord rec{node(0x11), kUuid, 300, {1, 0x0102030405060708ull}};
  // [1, 4, bin20 node, uuid, bucket 300, bin16 big-endian tags]
  BOOST_TEST(to_hex(encode(rec)) == "960104c414" + std::string(40, '1') + "d924" + to_hex(as_bytes(kUuid)) +
                                        "cd012c" + "c410" + "0000000000000001" + "0102030405060708");
}

BOOST_AUTO_TEST_CASE(records_round_trip) {
  ContactRecord contact{node(1), kProtocolVersion, 5,
                        {{EndpointKind::Lan, "192.168.1.2", 4224}, {EndpointKind::Loopback, "::1", 1},
                         {EndpointKind::Mapped, "11.0.0.1", 4224},
                         {EndpointKind::Relay, "11.0.0.10", 4224, node(9).hex()}},
                        123ull << 30};
  BOOST_TEST((decode_contact(encode(contact)).value() == contact));
  RepoRecord repo{node(2), kUuid};
  BOOST_TEST((decode_repo(encode(repo)).value() == repo));
  ProviderBucketRecord provider{node(3), kUuid, kKeyBuckets - 1, {5, 6, 7}};
  BOOST_TEST((decode_provider_bucket(encode(provider)).value() == provider));
  BOOST_TEST(provider.holds(6));
  BOOST_TEST(!provider.holds(8));
  ProviderBucketRecord empty{node(3), kUuid, 0, {}};
  BOOST_TEST((decode_provider_bucket(encode(empty)).value() == empty));
  RulesRecord rules{node(4), "-----BEGIN PGP SIGNED MESSAGE-----\n...", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n..."};
  BOOST_TEST((decode_rules(encode(rules)).value() == rules));
  // The largest document and key block fit in one DHT value, sealed.
  RulesRecord largest{node(4), std::string(kMaxRulesDocument, 'd'), std::string(kMaxRulesKeys, 'k')};
  BOOST_TEST(encode(largest).size() <= kMaxRecordBody);
  BOOST_TEST((decode_rules(encode(largest)).value() == largest));
  RulesRecord oversized{node(4), std::string(kMaxRulesDocument + 1, 'd'), ""};
  BOOST_TEST(!decode_rules(encode(oversized)));
  BOOST_TEST(!decode_rules(encode(RulesRecord{node(4), "", ""})));
}

BOOST_AUTO_TEST_CASE(a_contact_record_without_a_store_offer_offers_none_and_appended_fields_are_skipped) {
  ContactRecord c{node(1), kProtocolVersion, 0, {{EndpointKind::Lan, "10.0.0.1", 4224}}, 77};
  auto bytes = encode(c);
  // [1, kind, node, version, caps, endpoints, offer]: an older node wrote six fields, not seven.
  BOOST_REQUIRE(bytes[0] == 0x97);
  Bytes older(bytes.begin(), bytes.end() - 1);  // the offer 77 is the last byte (a positive fixint)
  older[0] = 0x96;
  auto decoded = decode_contact(older);
  BOOST_REQUIRE_MESSAGE(decoded, decoded.error());
  BOOST_TEST(decoded->store_offer == 0u);
  BOOST_TEST((decoded->endpoints == c.endpoints));
  // A newer node may append fields: they are skipped.
  Bytes newer = bytes;
  newer[0] = 0x98;
  newer.push_back(0xc0);
  auto later = decode_contact(newer);
  BOOST_REQUIRE_MESSAGE(later, later.error());
  BOOST_TEST(later->store_offer == 77u);
}

BOOST_AUTO_TEST_CASE(a_record_of_another_kind_is_refused) {
  RepoRecord repo{node(2), kUuid};
  auto r = decode_provider_bucket(encode(repo));
  BOOST_TEST(!r);
  BOOST_TEST(r.error().find("wrong kind") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(malformed_bodies_are_errors_not_crashes) {
  std::vector<Bytes> bad{
      {},
      {0xc1},                                   // never-used msgpack byte
      {0x92, 0x01},                             // truncated array
      {0x93, 0x02, 0x03, 0xc0},                 // unsupported version
      {0xdd, 0xff, 0xff, 0xff, 0xff},           // array claiming 4G elements
      {0x97, 0x01, 0x03, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0},  // nil everywhere
  };
  auto good = encode(ProviderBucketRecord{node(3), kUuid, 1, {1, 2}});
  auto trailing = good;
  trailing.push_back(0);
  bad.push_back(trailing);
  bad.push_back(Bytes(kMaxRecordBody + 1, 0x90));
  for (const auto& b : bad) {
    BOOST_TEST(!decode_provider_bucket(b));
    BOOST_TEST(!decode_contact(b));
    BOOST_TEST(!decode_repo(b));
    BOOST_TEST(!decode_rules(b));
  }
}

BOOST_AUTO_TEST_CASE(hostile_provider_records_are_refused) {
  BOOST_TEST(!decode_provider_bucket(encode(ProviderBucketRecord{node(3), "not-a-uuid", 1, {1}})));
  BOOST_TEST(!decode_provider_bucket(encode(ProviderBucketRecord{node(3), kUuid, kKeyBuckets, {1}})));
  BOOST_TEST(!decode_provider_bucket(encode(ProviderBucketRecord{node(3), kUuid, 1, {2, 1}})));  // unsorted
  BOOST_TEST(!decode_provider_bucket(encode(ProviderBucketRecord{node(3), kUuid, 1, {1, 1}})));  // repeated
  // A tag list that is not a whole number of tags.
  auto body = encode(ProviderBucketRecord{node(3), kUuid, 1, {1}});
  body[body.size() - 9] = 7;  // bin length 8 -> 7
  body.pop_back();
  BOOST_TEST(!decode_provider_bucket(body));
}

BOOST_AUTO_TEST_CASE(a_full_bucket_is_capped_at_the_encoder) {
  ProviderBucketRecord big{node(3), kUuid, 1, {}};
  for (std::uint64_t t = 0; t < kMaxKeyTags + 10; ++t) big.tags.push_back(t);
  auto decoded = decode_provider_bucket(encode(big));
  BOOST_REQUIRE(decoded);
  BOOST_TEST(decoded->tags.size() == kMaxKeyTags);
  BOOST_TEST(encode(big).size() <= kMaxRecordBody);
  // Storage nodes running annex-swarm accept even a full bucket record.
  auto swarm = SwarmToken::generate();
  BOOST_TEST(seal_record(swarm, swarm.bucket_location(1), encode(big), 1800000000).size() <= kMaxDhtValue);
}

BOOST_AUTO_TEST_CASE(contact_with_bad_endpoint_is_refused_unknown_kind_skipped) {
  ContactRecord c{node(1), 1, 0, {{EndpointKind::Lan, "10.0.0.1", 0}}};
  BOOST_TEST(!decode_contact(encode(c)));  // port 0
  ContactRecord many{node(1), 1, 0, {}};
  for (int i = 0; i < 40; ++i) many.endpoints.push_back({EndpointKind::Lan, "10.0.0.1", 1});
  auto decoded = decode_contact(encode(many));  // the encoder caps the list
  BOOST_REQUIRE(decoded);
  BOOST_TEST(decoded->endpoints.size() == kMaxEndpoints);
}

BOOST_AUTO_TEST_CASE(a_relay_endpoint_without_a_valid_relay_id_is_refused) {
  for (const auto& via : {std::string(""), std::string("xyz"), std::string(39, 'a')}) {
    ContactRecord c{node(1), 1, kCapabilityRelay, {{EndpointKind::Relay, "11.0.0.10", 4224, via}}};
    BOOST_TEST_INFO(via);
    BOOST_TEST(!decode_contact(encode(c)));
  }
}

BOOST_AUTO_TEST_CASE(sealed_record_opens_only_with_its_swarm_and_location) {
  auto swarm = SwarmToken::generate();
  auto other = SwarmToken::generate();
  auto key = AnnexKey::parse(kKey).value();
  auto loc = swarm.bucket_location(swarm.key_index(key).bucket);
  auto body = encode(ProviderBucketRecord{node(3), kUuid, swarm.key_index(key).bucket, {swarm.key_index(key).tag}});
  auto sealed = seal_record(swarm, loc, body, 1800000000);
  auto opened = open_record(swarm, loc, sealed);
  BOOST_REQUIRE(opened);
  BOOST_TEST(opened->body == body);
  BOOST_TEST(opened->issued_at == 1800000000u);
  BOOST_TEST(!open_record(other, loc, sealed));
  BOOST_TEST(!open_record(swarm, swarm.nodes_location(), sealed));  // replayed elsewhere
  BOOST_TEST(!open_record(swarm, swarm.bucket_location((swarm.key_index(key).bucket + 1) % kKeyBuckets), sealed));
  for (std::size_t i = 0; i < sealed.size(); i += 7) {
    auto tampered = sealed;
    tampered[i] ^= 0x40;
    BOOST_TEST(!open_record(swarm, loc, tampered));
  }
  BOOST_TEST(!open_record(swarm, loc, Bytes(sealed.begin(), sealed.begin() + 20)));
  BOOST_TEST(!open_record(swarm, loc, Bytes(kMaxSealedRecord + 1, 0)));
}

BOOST_AUTO_TEST_CASE(sealing_is_deterministic_and_the_issue_time_changes_the_bytes) {
  auto swarm = SwarmToken::generate();
  auto loc = swarm.nodes_location();
  auto body = encode(RepoRecord{node(2), kUuid});
  const std::uint64_t t = 1800000000;
  BOOST_TEST(seal_record(swarm, loc, body, t) == seal_record(swarm, loc, body, t));
  BOOST_TEST(seal_record(swarm, loc, body, t) != seal_record(swarm, loc, body, t + 1));
  auto other = encode(RepoRecord{node(3), kUuid});
  BOOST_TEST(seal_record(swarm, loc, body, t) != seal_record(swarm, loc, other, t));
  // The sealed bytes do not contain the plaintext.
  auto sealed = seal_record(swarm, loc, body, t);
  std::string s(sealed.begin(), sealed.end());
  BOOST_TEST(s.find(kUuid) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
