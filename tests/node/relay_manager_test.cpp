// The relay manager: offers relaying when told to or once reachable, and looks for relays
// to hold reservations on while nobody can dial this node.
#include <boost/test/unit_test.hpp>

#include "node/relay_manager.hpp"
#include "tests/support/fake_dialer.hpp"
#include "transfer/peer_pool.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
struct Relays {
  asio::io_context io;  // never run: nothing here may need the network
  test::ManualTimers timers;
  std::vector<ContactRecord> published;
  EndpointBook book{timers, {NodeId{}, 3000s, false},
                    {[] { return std::vector<Endpoint>{}; },
                     [this](const ContactRecord& c, bool) { published.push_back(c); },
                     [] { return true; }}};
  PeerPool pool{io, std::make_shared<test::FailingDialer>()};
  int offers = 0, lookups = 0;
  bool nat_applies = true;
  std::unique_ptr<RelayManager> manager;

  explicit Relays(RelayMode mode) {
    RelayManager::Settings s;
    s.mode = mode;
    manager = std::make_unique<RelayManager>(
        io, timers, book, pool, std::vector<SwarmToken>{SwarmToken::generate()},
        NodeId{}, s,
        RelayManager::Mediator{[this](std::chrono::milliseconds, std::function<void(std::vector<Member>)> done) {
                                 ++lookups;
                                 done({});
                               },
                               [this](PeerServer::RelayHooks) { ++offers; },
                               [](asio::ip::tcp::socket, const std::string&) {},
                               [this] { return nat_applies; }});
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(relay_manager)

BOOST_AUTO_TEST_CASE(relay_on_offers_at_start_and_says_so_in_the_contact_record) {
  Relays r(RelayMode::On);
  r.manager->start();
  BOOST_TEST(r.offers == 1);
  BOOST_TEST(r.book.relay_offered());
  BOOST_REQUIRE(!r.published.empty());
  BOOST_TEST(r.published.back().capabilities == kCapabilityRelay);
  BOOST_TEST(r.manager->status().server != nullptr);
}

BOOST_AUTO_TEST_CASE(auto_offers_only_once_a_dial_back_confirmed_this_node) {
  Relays r(RelayMode::Auto);
  r.manager->start();
  BOOST_TEST(r.offers == 0);
  r.book.set_confirmed({{EndpointKind::Public, "11.0.0.4", 4224}});
  r.manager->update();
  BOOST_TEST(r.offers == 1);
  BOOST_TEST(r.lookups == 0);  // reachable: no reservation wanted
}

BOOST_AUTO_TEST_CASE(unreachable_it_looks_for_relays_and_keeps_looking) {
  Relays r(RelayMode::Off);
  r.manager->start();
  r.manager->update();
  BOOST_TEST(r.lookups == 1);
  BOOST_TEST(r.manager->status().note == "no relay found in the swarm yet");
  r.timers.advance(10s);
  BOOST_TEST(r.lookups == 2);
  r.book.set_confirmed({{EndpointKind::Mapped, "11.0.0.4", 4224}});
  r.timers.advance(10s);
  BOOST_TEST(r.lookups == 2);  // reachable now: the retry stands down
}

BOOST_AUTO_TEST_CASE(a_loopback_only_node_never_looks_for_relays) {
  Relays r(RelayMode::Auto);
  r.nat_applies = false;
  r.manager->update();
  BOOST_TEST(r.lookups == 0);
  BOOST_TEST(r.offers == 0);
}

BOOST_AUTO_TEST_SUITE_END()
