#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

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

BOOST_AUTO_TEST_CASE(provider_record_has_golden_bytes) {
  ProviderRecord rec{node(0x11), kUuid, "WORM-s1-m2--x", 1, true};
  // [1, 3, bin20, uuid, key, 1, true]
  BOOST_TEST(to_hex(encode(rec)) ==
             "970103c414" + std::string(40, '1') + "d924" + to_hex(as_bytes(kUuid)) +
                 "ad" + to_hex(as_bytes("WORM-s1-m2--x")) + "01c3");
}

BOOST_AUTO_TEST_CASE(records_round_trip) {
  ContactRecord contact{node(1), kProtocolVersion, 5,
                        {{EndpointKind::Lan, "192.168.1.2", 4224}, {EndpointKind::Loopback, "::1", 1}}};
  BOOST_TEST((decode_contact(encode(contact)).value() == contact));
  RepoRecord repo{node(2), kUuid};
  BOOST_TEST((decode_repo(encode(repo)).value() == repo));
  ProviderRecord provider{node(3), kUuid, kKey, std::nullopt, false};
  BOOST_TEST((decode_provider(encode(provider)).value() == provider));
}

BOOST_AUTO_TEST_CASE(a_record_of_another_kind_is_refused) {
  RepoRecord repo{node(2), kUuid};
  auto r = decode_provider(encode(repo));
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
  auto good = encode(ProviderRecord{node(3), kUuid, kKey, 6, true});
  auto trailing = good;
  trailing.push_back(0);
  bad.push_back(trailing);
  bad.push_back(Bytes(kMaxRecordBody + 1, 0x90));
  for (const auto& b : bad) {
    BOOST_TEST(!decode_provider(b));
    BOOST_TEST(!decode_contact(b));
    BOOST_TEST(!decode_repo(b));
  }
}

BOOST_AUTO_TEST_CASE(provider_with_path_like_key_is_refused) {
  auto body = encode(ProviderRecord{node(3), kUuid, "../../etc/passwd", 6, true});
  BOOST_TEST(!decode_provider(body));
  auto bad_uuid = encode(ProviderRecord{node(3), "not-a-uuid", kKey, 6, true});
  BOOST_TEST(!decode_provider(bad_uuid));
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

BOOST_AUTO_TEST_CASE(sealed_record_opens_only_with_its_swarm_and_location) {
  auto swarm = SwarmToken::generate();
  auto other = SwarmToken::generate();
  auto key = AnnexKey::parse(kKey).value();
  auto loc = swarm.key_location(key);
  auto body = encode(ProviderRecord{node(3), kUuid, kKey, 6, true});
  auto sealed = seal_record(swarm, loc, body);
  BOOST_TEST(open_record(swarm, loc, sealed).value() == body);
  BOOST_TEST(!open_record(other, loc, sealed));
  BOOST_TEST(!open_record(swarm, swarm.nodes_location(), sealed));  // replayed elsewhere
  for (std::size_t i = 0; i < sealed.size(); i += 7) {
    auto tampered = sealed;
    tampered[i] ^= 0x40;
    BOOST_TEST(!open_record(swarm, loc, tampered));
  }
  BOOST_TEST(!open_record(swarm, loc, Bytes(sealed.begin(), sealed.begin() + 20)));
  BOOST_TEST(!open_record(swarm, loc, Bytes(kMaxSealedRecord + 1, 0)));
}

BOOST_AUTO_TEST_CASE(sealing_is_deterministic_so_refreshes_are_identical) {
  auto swarm = SwarmToken::generate();
  auto loc = swarm.nodes_location();
  auto body = encode(RepoRecord{node(2), kUuid});
  BOOST_TEST(seal_record(swarm, loc, body) == seal_record(swarm, loc, body));
  auto other = encode(RepoRecord{node(3), kUuid});
  BOOST_TEST(seal_record(swarm, loc, body) != seal_record(swarm, loc, other));
  // The sealed bytes do not contain the plaintext.
  auto sealed = seal_record(swarm, loc, body);
  std::string s(sealed.begin(), sealed.end());
  BOOST_TEST(s.find(kUuid) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
