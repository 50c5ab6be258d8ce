// The swarm directory over an in-memory DHT: what it writes, it reads back; what a hostile
// node plants is refused and counted; a lookup that never ends still answers.
#include <boost/test/unit_test.hpp>

#include "node/swarm_directory.hpp"
#include "tests/support/fake_dht.hpp"
#include "tests/support/manual_timers.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
NodeId node(std::uint8_t b) {
  NodeId id;
  id.bytes.fill(b);
  return id;
}
const std::string kUuid = "5b3b4ab8-0e3a-4c4f-9c1c-2d6e1f0a9b77";
AnnexKey key() {
  return AnnexKey::parse("SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt").value();
}

struct Net {
  test::ManualTimers timers;
  NodeId self = node(1);
  test::FakeDht dht{self};
  SwarmToken a = SwarmToken::generate(), b = SwarmToken::generate();
  SwarmDirectory dir{dht, timers, self, {a, b}, 5s};
};
}  // namespace

BOOST_AUTO_TEST_SUITE(swarm_directory)

BOOST_AUTO_TEST_CASE(a_contact_record_put_is_found_in_every_swarm) {
  Net n;
  n.dir.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Lan, "192.168.1.2", 4224}}}, 0, false);
  std::vector<Member> found;
  n.dir.members(5s, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_REQUIRE(found.size() == 2u);  // once per swarm
  BOOST_TEST(found[0].swarm != found[1].swarm);
  BOOST_TEST(found[0].contact.endpoints.size() == 1u);
  std::vector<Member> relays;
  n.dir.relays(5s, [&](std::vector<Member> m) { relays = std::move(m); });
  BOOST_TEST(relays.empty());
  BOOST_TEST(n.dir.refused().forged == 0u);
}

BOOST_AUTO_TEST_CASE(a_provider_is_found_by_its_key_in_the_swarm_that_holds_it) {
  Net n;
  auto index = n.a.key_index(key());
  n.dir.put_bucket(0, kUuid, index.bucket, 0, {index.tag}, [](bool) {});
  std::vector<Provider> found;
  n.dir.providers(key(), [&](std::vector<Provider> p) { found = std::move(p); });
  BOOST_REQUIRE(found.size() == 1u);
  BOOST_TEST(found[0].swarm == 0u);
  BOOST_TEST(found[0].repo_uuid == kUuid);
  BOOST_TEST((found[0].node == n.self));
}

BOOST_AUTO_TEST_CASE(the_newest_version_of_a_record_wins_over_older_copies) {
  Net n;
  auto index = n.a.key_index(key());
  auto loc = n.a.bucket_location(index.bucket);
  auto id = n.a.value_id("provider/" + n.self.hex() + "/" + kUuid);
  // seq 1 holds the key, seq 2 dropped it; a lagging storage node still hands out seq 1.
  auto v1 = seal_record(n.a, loc, encode(ProviderBucketRecord{n.self, kUuid, index.bucket, {index.tag}}));
  auto v2 = seal_record(n.a, loc, encode(ProviderBucketRecord{n.self, kUuid, index.bucket, {}}));
  n.dht.plant(loc, {true, n.self, id, 2, v2});
  n.dht.plant(loc, {false, n.self, id, 1, v1});  // not signed: refused outright
  n.dht.plant(loc, {true, n.self, id + 1, 1, v1});
  std::vector<Provider> found;
  n.dir.providers(key(), [&](std::vector<Provider> p) { found = std::move(p); });
  BOOST_TEST(found.size() == 1u);  // only the other value id still names it
  BOOST_TEST(n.dir.refused().unsigned_values == 1u);
}

BOOST_AUTO_TEST_CASE(hostile_values_are_refused_and_counted_by_reason) {
  Net n;
  auto loc = n.a.nodes_location();
  ContactRecord mine{node(7), kProtocolVersion, 0, {}};
  // Another swarm's record, garbage sealed right, a record naming another node, unsigned.
  n.dht.plant(loc, {true, node(7), 1, 0, seal_record(n.b, loc, encode(mine))});
  n.dht.plant(loc, {true, node(7), 2, 0, seal_record(n.a, loc, Bytes{0x93, 1, 2, 3})});
  n.dht.plant(loc, {true, node(8), 3, 0, seal_record(n.a, loc, encode(mine))});
  n.dht.plant(loc, {false, node(7), 4, 0, seal_record(n.a, loc, encode(mine))});
  std::vector<Member> found;
  n.dir.members(5s, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_TEST(found.empty());
  BOOST_TEST(n.dir.refused().undecryptable == 1u);
  BOOST_TEST(n.dir.refused().malformed == 1u);
  BOOST_TEST(n.dir.refused().forged == 1u);
  BOOST_TEST(n.dir.refused().unsigned_values == 1u);
}

BOOST_AUTO_TEST_CASE(a_provider_record_filed_under_another_bucket_is_forged) {
  Net n;
  auto index = n.a.key_index(key());
  auto loc = n.a.bucket_location(index.bucket);
  auto other = (index.bucket + 1) % kKeyBuckets;
  n.dht.plant(loc, {true, node(9), 1, 0, seal_record(n.a, loc, encode(ProviderBucketRecord{node(9), kUuid, other, {index.tag}}))});
  std::vector<Provider> found;
  n.dir.providers(key(), [&](std::vector<Provider> p) { found = std::move(p); });
  BOOST_TEST(found.empty());
  BOOST_TEST(n.dir.refused().forged == 1u);
}

BOOST_AUTO_TEST_CASE(a_lookup_the_dht_never_answers_ends_after_its_deadline) {
  Net n;
  n.dht.hold_gets = true;
  std::optional<std::vector<SwarmNode>> found;
  n.dir.repo_nodes(kUuid, [&](std::vector<SwarmNode> r) { found = std::move(r); });
  n.timers.advance(5s);
  BOOST_TEST(!found);
  n.timers.advance(2s);
  BOOST_REQUIRE(found);
  BOOST_TEST(found->empty());
  n.dht.release_gets();  // far too late: nobody hears it
}

BOOST_AUTO_TEST_CASE(contacts_come_back_for_the_nodes_asked_only) {
  Net n;
  n.dir.put_contact({n.self, kProtocolVersion, kCapabilityRelay, {{EndpointKind::Public, "11.0.0.1", 4224}}}, 3, true);
  std::vector<Member> found;
  n.dir.contacts({{0, n.self}, {1, node(5)}}, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_REQUIRE(found.size() == 1u);
  BOOST_TEST(found[0].swarm == 0u);
  std::vector<Member> relays;
  n.dir.relays(5s, [&](std::vector<Member> m) { relays = std::move(m); });
  BOOST_TEST(relays.size() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
