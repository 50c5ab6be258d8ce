// The swarm directory over an in-memory DHT: what it writes, it reads back; what a hostile
// node plants is refused and counted; a lookup that never ends still answers.
#include <boost/test/unit_test.hpp>

#include <set>

#include "node/swarm_directory.hpp"
#include "tests/support/fake_dht.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

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

crypto::Sha256Digest secret(std::uint8_t b) {
  crypto::Sha256Digest s;
  s.fill(b);
  return s;
}

struct Net {
  test::ManualTimers timers;
  NodeId self = node(1);
  test::FakeDht dht{self};
  SwarmToken a = SwarmToken::generate(), b = SwarmToken::generate();
  SwarmDirectory dir{dht, timers, self, {a, b}, 5s, secret(1)};
  // The directory's clock, as the Unix time a record is stamped with.
  std::uint64_t now() const { return timers.unix_seconds(); }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(swarm_directory)

BOOST_AUTO_TEST_CASE(a_contact_record_put_is_found_in_every_swarm) {
  Net n;
  n.dir.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Lan, "192.168.1.2", 4224}}}, false);
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
  n.dir.put_bucket(0, kUuid, index.bucket, {index.tag}, [](bool) {});
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
  // An older version held the key, the newer one dropped it; a storage node still hands
  // out the older one under the last epoch's value id (and an unsigned copy of it).
  auto v1 = seal_record(n.a, loc, encode(ProviderBucketRecord{n.self, kUuid, index.bucket, {index.tag}}), n.now() - 60);
  auto v2 = seal_record(n.a, loc, encode(ProviderBucketRecord{n.self, kUuid, index.bucket, {}}), n.now());
  n.dht.plant(loc, {true, n.self, 7, 2, v2});
  n.dht.plant(loc, {false, n.self, 7, 1, v1});  // not signed: refused outright
  n.dht.plant(loc, {true, n.self, 8, 9, v1});   // a higher seq under another id does not matter
  std::vector<Provider> found;
  n.dir.providers(key(), [&](std::vector<Provider> p) { found = std::move(p); });
  BOOST_TEST(found.empty());
  BOOST_TEST(n.dir.refused().unsigned_values == 1u);
}

BOOST_AUTO_TEST_CASE(a_record_replayed_after_its_lifetime_is_refused_and_counted) {
  Net n;
  auto loc = n.a.nodes_location();
  auto lifetime = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(kRecordLifetime).count());
  ContactRecord old{node(7), kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.7", 4224}}};
  ContactRecord fresh{node(8), kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.8", 4224}}};
  ContactRecord future{node(9), kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.9", 4224}}};
  // A copy kept since it was current, put back long after; one just inside the lifetime
  // (with the allowed clock skew); one from a clock far ahead.
  n.dht.plant(loc, {true, node(7), 1, 0, seal_record(n.a, loc, encode(old), n.now() - lifetime - kRecordClockSkew - 1)});
  n.dht.plant(loc, {true, node(8), 2, 0, seal_record(n.a, loc, encode(fresh), n.now() - lifetime)});
  n.dht.plant(loc, {true, node(9), 3, 0, seal_record(n.a, loc, encode(future), n.now() + 3 * kRecordClockSkew)});
  std::vector<Member> found;
  n.dir.members(5s, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_REQUIRE(found.size() == 1u);
  BOOST_TEST((found[0].contact.node == node(8)));
  BOOST_TEST(n.dir.refused().expired == 2u);
  // The same bytes later: what was current is refused once its lifetime has passed.
  n.timers.advance(std::chrono::seconds(kRecordClockSkew + 1));
  n.dir.members(5s, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_TEST(found.empty());
  BOOST_TEST(n.dir.refused().expired == 5u);
}

BOOST_AUTO_TEST_CASE(every_put_is_accepted_by_the_storage_rule_across_refreshes_restarts_and_epochs) {
  Net n;
  ContactRecord c{n.self, kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.1", 4224}}};
  auto loc = n.a.node_location(n.self);
  auto ids = [&] {
    std::set<std::uint64_t> out;
    for (const auto& v : n.dht.values_at(loc)) out.insert(v.id);
    return out;
  };
  n.dir.put_contact(c, false);
  n.dir.put_contact(c, false);  // the same record again within the second: the next number
  n.timers.advance(600s);
  n.dir.put_contact(c, false);  // a refresh: a new issue time, so a new number
  BOOST_TEST(n.dht.refused_puts == 0u);
  auto first_ids = ids();
  BOOST_REQUIRE(first_ids.size() == 1u);
  // Nobody else can compute our value id from the swarm secret alone.
  BOOST_TEST(*first_ids.begin() != n.a.value_id("contact"));
  // A restart (no saved state) a little later still puts a higher number.
  n.timers.advance(2s);
  SwarmDirectory restarted{n.dht, n.timers, n.self, {n.a, n.b}, 5s, secret(1)};
  restarted.put_contact(c, false);
  BOOST_TEST(n.dht.refused_puts == 0u);
  BOOST_TEST(ids() == first_ids);
  // Numbers are 16 bits: the next epoch (65536 s) puts under a new id, not a lower number.
  n.timers.advance(std::chrono::seconds(65536));
  restarted.put_contact(c, false);
  BOOST_TEST(n.dht.refused_puts == 0u);
  BOOST_TEST(ids().size() == 2u);
  std::vector<Member> found;
  restarted.contacts({{0, n.self}}, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_TEST(found.size() == 1u);  // the lingering value of the last epoch is the same slot
  // Another node's directory names its values differently.
  test::FakeDht other_dht{node(2)};
  SwarmDirectory other{other_dht, n.timers, node(2), {n.a}, 5s, secret(2)};
  other.put_contact({node(2), kProtocolVersion, 0, {}}, false);
  auto theirs = other_dht.values_at(n.a.node_location(node(2)));
  BOOST_REQUIRE(theirs.size() == 1u);
  BOOST_TEST(!ids().count(theirs[0].id));
}

BOOST_AUTO_TEST_CASE(two_versions_in_one_second_are_told_apart_and_a_clock_set_back_does_not_lower_the_numbers) {
  test::TempDir dir;
  auto file = dir.path() / "dht-stamps";
  test::ManualTimers later;  // an hour ahead of `n.timers`, which stands for the clock set back
  later.advance(3600s);
  Net n;
  {
    SwarmDirectory first{n.dht, later, n.self, {n.a}, 5s, secret(1), file};
    first.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Candidate, "11.0.0.1", 4224}}}, false);
    first.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.1", 4224}}}, false);  // same second
    std::vector<Member> found;
    first.members(5s, [&](std::vector<Member> m) { found = std::move(m); });
    BOOST_REQUIRE(found.size() == 1u);
    BOOST_TEST((found[0].contact.endpoints[0].kind == EndpointKind::Public));  // the later one
  }  // stops: the highest stamp is kept in the file
  BOOST_TEST(std::filesystem::exists(file));
  // Restarted with the clock an hour back: its puts still carry higher numbers.
  SwarmDirectory restarted{n.dht, n.timers, n.self, {n.a}, 5s, secret(1), file};
  restarted.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.2", 4224}}}, false);
  BOOST_TEST(n.dht.refused_puts == 0u);
  // Without the file the same restart would have been refused by the storage rule.
  SwarmDirectory forgetful{n.dht, n.timers, n.self, {n.a}, 5s, secret(1)};
  forgetful.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Public, "11.0.0.3", 4224}}}, false);
  BOOST_TEST(n.dht.refused_puts > 0u);
}

BOOST_AUTO_TEST_CASE(hostile_values_are_refused_and_counted_by_reason) {
  Net n;
  auto loc = n.a.nodes_location();
  ContactRecord mine{node(7), kProtocolVersion, 0, {}};
  // Another swarm's record, garbage sealed right, a record naming another node, unsigned.
  n.dht.plant(loc, {true, node(7), 1, 0, seal_record(n.b, loc, encode(mine), n.now())});
  n.dht.plant(loc, {true, node(7), 2, 0, seal_record(n.a, loc, Bytes{0x93, 1, 2, 3}, n.now())});
  n.dht.plant(loc, {true, node(8), 3, 0, seal_record(n.a, loc, encode(mine), n.now())});
  n.dht.plant(loc, {false, node(7), 4, 0, seal_record(n.a, loc, encode(mine), n.now())});
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
  n.dht.plant(loc, {true, node(9), 1, 0, seal_record(n.a, loc, encode(ProviderBucketRecord{node(9), kUuid, other, {index.tag}}), n.now())});
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
  n.dir.put_contact({n.self, kProtocolVersion, kCapabilityRelay, {{EndpointKind::Public, "11.0.0.1", 4224}}}, true);
  std::vector<Member> found;
  n.dir.contacts({{0, n.self}, {1, node(5)}}, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_REQUIRE(found.size() == 1u);
  BOOST_TEST(found[0].swarm == 0u);
  std::vector<Member> relays;
  n.dir.relays(5s, [&](std::vector<Member> m) { relays = std::move(m); });
  BOOST_TEST(relays.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_contact_missing_from_its_own_location_is_found_in_the_member_list) {
  Net n;
  n.dir.put_contact({n.self, kProtocolVersion, 0, {{EndpointKind::Lan, "192.168.1.2", 4224}}}, false);
  n.dht.forget(n.a.node_location(n.self));
  std::vector<Member> found;
  n.dir.contacts({{0, n.self}, {0, node(5)}}, [&](std::vector<Member> m) { found = std::move(m); });
  BOOST_REQUIRE(found.size() == 1u);  // node 5 has no record anywhere
  BOOST_TEST(found[0].swarm == 0u);
  BOOST_TEST((found[0].contact.node == n.self));
  BOOST_TEST(found[0].contact.endpoints.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
