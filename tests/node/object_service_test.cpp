// The object service with an in-memory DHT and a dialer that reaches nobody: what it
// answers when holders cannot be asked, and the errors a client matches on.
#include <boost/test/unit_test.hpp>

#include <asio/thread_pool.hpp>
#include <fstream>

#include "node/object_service.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"
#include "tests/support/fake_dht.hpp"
#include "tests/support/fake_dialer.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
const std::string kStore = "11111111-2222-3333-4444-555555555555";

NodeId node(std::uint8_t b) {
  NodeId id;
  id.bytes.fill(b);
  return id;
}

struct Service {
  asio::io_context io;  // run only to deliver the pool's answers
  asio::thread_pool disk{1};
  test::ManualTimers timers;
  test::TempDir dir;
  NodeId self = node(1);
  test::FakeDht dht{self};
  SwarmToken swarm = SwarmToken::generate();
  std::vector<SwarmToken> swarms{swarm};
  SwarmDirectory directory{dht, timers, self, swarms, 5s, {}};
  LocalObjects objects{dir.path()};
  std::shared_ptr<test::FailingDialer> dialer = std::make_shared<test::FailingDialer>();
  PeerPool pool{io, dialer};
  std::unique_ptr<ObjectService> service;

  explicit Service(bool in_swarm = true) {
    if (!in_swarm) swarms.clear();
    BOOST_REQUIRE(objects.open({}));
    service = std::make_unique<ObjectService>(io, timers, disk.get_executor(), in_swarm ? directory : empty_directory,
                                              objects, pool, ObjectService::Settings{{self, "127.0.0.1", 4224}, 0});
  }
  ~Service() { disk.join(); }
  SwarmDirectory empty_directory{dht, timers, self, {}, 5s, {}};

  // Another node announces `key` in store kStore and has a contact record.
  void holder(const NodeId& who, const AnnexKey& key) {
    auto index = swarm.key_index(key);
    auto loc = swarm.bucket_location(index.bucket);
    dht.plant(loc, {true, who, 1, 0, seal_record(swarm, loc, encode(ProviderBucketRecord{who, kStore, index.bucket, {index.tag}}), timers.unix_seconds())});
    for (auto l : {swarm.node_location(who), swarm.nodes_location()})
      dht.plant(l, {true, who, 2, 0,
                    seal_record(swarm, l, encode(ContactRecord{who, kProtocolVersion, 0, {{EndpointKind::Loopback, "127.0.0.1", 9}}}),
                                timers.unix_seconds())});
  }
};

AnnexKey key_of(const std::string& content) {
  return AnnexKey::parse("SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(crypto::sha256(as_bytes(content)))).value();
}

template <class T>
std::optional<ControlErrorCode> error_code(const std::optional<Outcome<T>>& o) {
  if (!o) return std::nullopt;
  if (auto* e = std::get_if<ControlError>(&*o)) return e->code;
  return std::nullopt;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(object_service)

BOOST_AUTO_TEST_CASE(a_holder_that_cannot_be_asked_makes_presence_unknown_never_absent) {
  Service s;
  auto key = key_of("held elsewhere\n");
  s.holder(node(7), key);
  std::optional<Outcome<PresentReply>> out;
  s.service->present({key, kStore}, [&](Outcome<PresentReply> o) { out = std::move(o); });
  BOOST_REQUIRE(out);
  auto& reply = std::get<PresentReply>(*out);
  BOOST_TEST(!reply.present);
  BOOST_TEST(reply.unknown);
  BOOST_TEST(reply.unreachable.count(node(7).hex()) == 1u);
  BOOST_TEST(reply.unreachable[node(7).hex()].find("Connection refused") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_copy_in_our_own_store_is_present_without_asking_anyone) {
  Service s;
  std::string content = "mine\n";
  auto key = key_of(content);
  std::ofstream(s.dir.path() / "f") << content;
  BOOST_REQUIRE(import_into_store(s.objects.at(s.objects.store(kStore).value()), key, s.dir.path() / "f", nullptr));
  std::optional<Outcome<PresentReply>> out;
  s.service->present({key, kStore}, [&](Outcome<PresentReply> o) { out = std::move(o); });
  BOOST_REQUIRE(out);
  BOOST_TEST(std::get<PresentReply>(*out).present);
  BOOST_TEST(s.dialer->dialled.empty());
}

BOOST_AUTO_TEST_CASE(remove_fails_when_a_holder_cannot_be_asked) {
  Service s;
  auto key = key_of("two holders\n");
  s.holder(node(8), key);
  std::optional<Outcome<RemoveReply>> out;
  s.service->remove({key, kStore}, [&](Outcome<RemoveReply> o) { out = std::move(o); });
  BOOST_REQUIRE(out);
  auto& reply = std::get<RemoveReply>(*out);
  BOOST_TEST(reply.removed_from.empty());
  BOOST_TEST(reply.failed.count(node(8).hex()) == 1u);
}

BOOST_AUTO_TEST_CASE(requests_that_cannot_be_served_say_why_by_code) {
  Service s;
  std::optional<Outcome<GetReply>> got;
  s.service->get({AnnexKey::parse("WORM-s5-m1--photo.jpg").value(), "/tmp/out", false, ""}, [](const Progress&) {},
                 [&](Outcome<GetReply> o) { got = std::move(o); });
  BOOST_TEST((error_code(got) == ControlErrorCode::Unverifiable));
  got.reset();
  s.service->get({key_of("nobody has it\n"), "/tmp/out", false, ""}, [](const Progress&) {},
                 [&](Outcome<GetReply> o) { got = std::move(o); });
  BOOST_TEST(!got);  // nobody announces it: one more look, a second later
  s.timers.advance(1s);
  BOOST_TEST((error_code(got) == ControlErrorCode::NotFound));
  Service outside(false);
  std::optional<Outcome<WhereisReply>> where;
  outside.service->whereis({key_of("x\n")}, [&](Outcome<WhereisReply> o) { where = std::move(o); });
  BOOST_TEST((error_code(where) == ControlErrorCode::NoSwarm));
}

BOOST_AUTO_TEST_CASE(whereis_and_peers_answer_from_the_directory) {
  Service s;
  auto key = key_of("announced\n");
  s.holder(node(9), key);
  std::optional<Outcome<WhereisReply>> where;
  s.service->whereis({key}, [&](Outcome<WhereisReply> o) { where = std::move(o); });
  BOOST_REQUIRE(where);
  auto& w = std::get<WhereisReply>(*where);
  BOOST_REQUIRE(w.providers.size() == 1u);
  BOOST_TEST(w.providers[0].repo == kStore);
  BOOST_TEST(w.size.value_or(0) == 10u);
  std::optional<Outcome<PeersReply>> peers;
  s.service->peers([&](Outcome<PeersReply> o) { peers = std::move(o); });
  BOOST_REQUIRE(peers);
  BOOST_TEST(std::get<PeersReply>(*peers).peers.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
