// The replica service with an in-memory DHT, a clock moved by hand and a dialer that
// reaches nobody: a TAKE is refused with a reason the asker can act on, a holder never
// drops its copy on the word of keepers it cannot check, and a keeper unseen for the
// store's grace period counts as lost.
#include <boost/test/unit_test.hpp>

#include <asio/thread_pool.hpp>
#include <ctime>
#include <fstream>

#include "node/replica_service.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"
#include "tests/support/fake_dht.hpp"
#include "tests/support/fake_dialer.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
const std::string kStore = "11111111-2222-3333-4444-666666666666";

NodeId node(std::uint8_t b) {
  NodeId id;
  id.bytes.fill(b);
  return id;
}

AnnexKey key_of(const std::string& content) {
  return AnnexKey::parse("SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(crypto::sha256(as_bytes(content)))).value();
}

struct Replicas {
  asio::io_context io;
  asio::thread_pool disk{1};
  test::ManualTimers timers;
  test::TempDir dir;
  NodeId self = node(1);
  test::FakeDht dht{self};
  SwarmToken swarm = SwarmToken::generate();
  SwarmDirectory directory{dht, timers, self, {swarm}, 5s, {}};
  LocalObjects objects{dir.path()};
  std::shared_ptr<test::FailingDialer> dialer = std::make_shared<test::FailingDialer>();
  PeerPool pool{io, dialer};
  std::optional<SwarmRules> rules;
  std::optional<HoursWindow> hours;
  std::uint64_t offer = 1ull << 30;
  std::unique_ptr<ReplicaService> service;

  Replicas() {
    BOOST_REQUIRE(objects.open({}));
    service = std::make_unique<ReplicaService>(
        io, timers, disk.get_executor(), directory, objects, pool,
        ReplicaService::Settings{{self, "127.0.0.1", 4224},
                                 [this] { return rules; },
                                 [this] { return offer; },
                                 [this] { return hours; },
                                 [] { return std::shared_ptr<RateLimiter>(); },
                                 {},
                                 2s});
  }
  ~Replicas() {
    service->stop();
    disk.join();
  }
  // Rules asking `copies` copies of kStore on the group `members`.
  void rules_for(std::vector<NodeId> members, unsigned copies) {
    SwarmRules r;
    r.version = 1;
    r.groups["home"] = std::move(members);
    r.stores[kStore] = StoreRule{copies, {"home"}, 10s};
    rules = r;
  }
  // A member with a contact record (offering a GiB), reachable at an address nobody answers.
  void member(const NodeId& who) {
    for (auto l : {swarm.node_location(who), swarm.nodes_location()})
      dht.plant(l, {true, who, 2, 0,
                    seal_record(swarm, l,
                                encode(ContactRecord{who, kProtocolVersion, 0, {{EndpointKind::Loopback, "127.0.0.1", 9}}, 1ull << 30}),
                                timers.unix_seconds())});
  }
  AnnexKey held(const std::string& content) {
    auto key = key_of(content);
    std::ofstream(dir.path() / "f") << content;
    BOOST_REQUIRE(import_into_store(objects.at(objects.store(kStore).value()), key, dir.path() / "f", nullptr));
    return key;
  }
  std::variant<std::uint64_t, PeerServer::Refusal> take(const std::string& key, const NodeId& asker,
                                                        std::optional<Bytes> capability = std::nullopt) {
    std::optional<std::variant<std::uint64_t, PeerServer::Refusal>> out;
    peer::Take t{1, key, kStore, capability ? *capability : swarm.store_capability(kStore), ""};
    service->take(PeerServer::ShareTake{asker, 0, t}, [&](auto answer) { out = answer; });
    BOOST_REQUIRE(out);
    return *out;
  }
  static std::string refusal(const std::variant<std::uint64_t, PeerServer::Refusal>& answer) {
    auto* r = std::get_if<PeerServer::Refusal>(&answer);
    return r ? r->why : std::string();
  }
  // One sweep, carried through the disk worker and the io loop.
  void sweep(std::chrono::seconds after) {
    auto before = service->status().sweeps;
    timers.advance(after);
    test::run_io_until(io, [&] {
      timers.run_posted();
      return service->status().sweeps > before;
    }, 20s);
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(replica_service)

BOOST_AUTO_TEST_CASE(a_take_is_refused_with_a_reason_the_asker_can_act_on) {
  Replicas r;
  auto key = key_of("to replicate\n").str();
  auto asker = node(9);
  BOOST_TEST(Replicas::refusal(r.take(key, asker)).find("do not replicate") != std::string::npos);
  r.rules_for({node(5)}, 2);
  BOOST_TEST(Replicas::refusal(r.take(key, asker)).find("none of the groups") != std::string::npos);
  r.rules_for({r.self, node(5)}, 2);
  BOOST_TEST(Replicas::refusal(r.take(key, asker, Bytes(32, 7))).find("write capability") != std::string::npos);
  BOOST_TEST(Replicas::refusal(r.take("URL--http&c%%example.org%x", asker)).find("no size") != std::string::npos);
  {
    auto now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    int minute = local.tm_hour * 60 + local.tm_min;
    r.hours = HoursWindow{(minute + 60) % 1440, (minute + 120) % 1440};  // an hour from now, for an hour
  }
  BOOST_TEST(Replicas::refusal(r.take(key, asker)).find("outside this node's hours") != std::string::npos);
  r.hours.reset();
  r.offer = 4;
  BOOST_TEST(Replicas::refusal(r.take(key, asker)).find("no room") != std::string::npos);
  r.offer = 1ull << 30;
  // Accepted, then given up: the asker has no contact record to fetch from.
  auto accepted = r.take(key, asker);
  BOOST_REQUIRE(std::holds_alternative<std::uint64_t>(accepted));
  BOOST_TEST(std::get<std::uint64_t>(accepted) == 0u);
  BOOST_TEST(r.service->status().take_failures == 1u);
  BOOST_REQUIRE_EQUAL(r.service->status().stores.size(), 1u);
  BOOST_TEST(r.service->status().stores[0].wanted_missing == 1u);
  // A key held already: its size + 1.
  auto mine = r.held("already here\n");
  auto held = r.take(mine.str(), asker);
  BOOST_REQUIRE(std::holds_alternative<std::uint64_t>(held));
  BOOST_TEST(std::get<std::uint64_t>(held) == *mine.content_size() + 1);
}

BOOST_AUTO_TEST_CASE(a_holder_never_trims_on_the_word_of_keepers_it_cannot_check_and_unseen_ones_are_lost) {
  Replicas r;
  auto key = r.held("the only copy\n");
  r.rules_for({node(5), node(6)}, 1);  // this node holds it and is no keeper
  r.member(node(5));
  r.member(node(6));
  r.service->start_sweeps(1s);
  r.sweep(1s);
  auto status = r.service->status();
  BOOST_REQUIRE_EQUAL(status.stores.size(), 1u);
  BOOST_TEST(status.stores[0].held == 1u);
  BOOST_TEST(status.stores[0].below_target == 1u);
  BOOST_TEST(status.stores[0].lost.empty());  // not yet: the grace period runs from the start
  BOOST_TEST(status.asked >= 1u);             // a keeper was asked to take it (and could not be reached)
  // Past the 10 s grace, neither keeper ever answered: both are lost, and the copy stays.
  for (int i = 0; i < 11; ++i) r.sweep(1s);
  status = r.service->status();
  BOOST_TEST(status.stores[0].lost.size() == 2u);
  BOOST_TEST(status.trimmed == 0u);
  BOOST_TEST(r.objects.locate(key, kStore).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
