// The endpoint book: the only publisher of the contact record.
#include <boost/test/unit_test.hpp>

#include "node/endpoint_book.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
struct Put {
  ContactRecord contact;
  bool relay;
};
struct Book {
  test::ManualTimers timers;
  std::vector<Put> puts;
  bool connected = true;
  std::vector<Endpoint> local{{EndpointKind::Lan, "192.168.1.2", 4224}};
  std::unique_ptr<EndpointBook> book;
  explicit Book(bool relay_only = false) { make(relay_only); }
  void make(bool relay_only = false) {
    book = std::make_unique<EndpointBook>(
        timers, EndpointBook::Settings{NodeId{}, 3000s, relay_only},
        EndpointBook::Mediator{[this] { return local; },
                               [this](const ContactRecord& c, bool relay) { puts.push_back({c, relay}); },
                               [this] { return connected; }});
  }
};
const Endpoint kMapped{EndpointKind::Mapped, "11.0.0.1", 4224};
const Endpoint kRelay{EndpointKind::Relay, "11.0.0.10", 4224, std::string(40, 'a')};
}  // namespace

BOOST_AUTO_TEST_SUITE(endpoint_book)

BOOST_AUTO_TEST_CASE(every_change_is_published_at_once) {
  Book b;
  b.book->start();
  BOOST_REQUIRE(b.puts.size() == 1u);
  BOOST_TEST(b.book->set_confirmed({kMapped}));
  BOOST_REQUIRE(b.puts.size() == 2u);
  BOOST_TEST((b.puts[1].contact.endpoints == std::vector<Endpoint>{b.local[0], kMapped}));
  BOOST_TEST(!b.book->set_confirmed({kMapped}));  // nothing changed, nothing put
  BOOST_TEST(b.puts.size() == 2u);
  b.book->set_relay_offered(true);
  BOOST_TEST(b.puts.back().relay);
  BOOST_TEST(b.puts.back().contact.capabilities == kCapabilityRelay);
  BOOST_TEST(b.puts.size() == 3u);
  BOOST_TEST(b.book->reachable());
}

BOOST_AUTO_TEST_CASE(the_store_offer_is_published_when_it_moves_much_not_for_every_byte) {
  Book b;
  b.book->start();
  BOOST_REQUIRE(b.puts.size() == 1u);
  BOOST_TEST(b.puts[0].contact.store_offer == 0u);
  b.book->set_store_offer(100ull << 30);  // from none: at once
  BOOST_REQUIRE(b.puts.size() == 2u);
  BOOST_TEST(b.puts[1].contact.store_offer == 100ull << 30);
  b.book->set_store_offer((100ull << 30) - (1ull << 30));  // 1 GiB of 100 used: not worth a put
  BOOST_TEST(b.puts.size() == 2u);
  b.book->set_store_offer(80ull << 30);  // a fifth gone since the last put
  BOOST_REQUIRE(b.puts.size() == 3u);
  BOOST_TEST(b.puts[2].contact.store_offer == 80ull << 30);
  b.book->set_store_offer(0);  // full: at once
  BOOST_REQUIRE(b.puts.size() == 4u);
  BOOST_TEST(b.puts[3].contact.store_offer == 0u);
}

BOOST_AUTO_TEST_CASE(the_offer_is_the_configured_space_left_within_the_free_space_less_a_reserve) {
  const std::uint64_t G = 1ull << 30;
  // auto: 100 GiB free on a 1 TiB disk, reserve 1 GiB + 5%.
  BOOST_TEST(offered_store_space(std::nullopt, 0, 100 * G, 1024 * G) == 100 * G - G - 1024 * G / 20);
  BOOST_TEST(offered_store_space(std::nullopt, 0, G / 2, 10 * G) == 0u);  // less free than the reserve
  BOOST_TEST(offered_store_space(0, 0, 100 * G, 200 * G) == 0u);           // store-space = 0
  BOOST_TEST(offered_store_space(20 * G, 5 * G, 100 * G, 200 * G) == 15 * G);
  BOOST_TEST(offered_store_space(20 * G, 25 * G, 100 * G, 200 * G) == 0u);  // over its cap already
  BOOST_TEST(offered_store_space(500 * G, 0, 100 * G, 200 * G) == 100 * G - G - 10 * G);
}

BOOST_AUTO_TEST_CASE(the_record_is_put_again_every_refresh_and_sooner_while_offline) {
  Book b;
  b.connected = false;
  b.book->start();
  b.timers.advance(10s);
  BOOST_TEST(b.puts.size() == 2u);
  b.connected = true;
  b.timers.advance(10s);
  BOOST_TEST(b.puts.size() == 3u);
  b.timers.advance(2999s);
  BOOST_TEST(b.puts.size() == 3u);
  b.timers.advance(1s);
  BOOST_TEST(b.puts.size() == 4u);
  b.book->stop();
  b.timers.advance(1h);
  BOOST_TEST(b.puts.size() == 4u);
}

BOOST_AUTO_TEST_CASE(relay_endpoints_come_last_and_relay_only_hides_the_rest) {
  Book b(true);
  b.book->start();
  b.book->set_relay_endpoints({kRelay});
  BOOST_TEST((b.puts.back().contact.endpoints == std::vector<Endpoint>{kRelay}));
  BOOST_TEST(b.book->all().size() == 2u);  // status still lists the LAN endpoint
}

BOOST_AUTO_TEST_CASE(local_endpoints_are_loopback_and_lan_and_public_ones_only_candidates) {
  auto eps = local_endpoints("", 4224, {"192.168.1.2", "11.0.0.5", "fe80::1", "10.1.2.3"});
  BOOST_REQUIRE(eps.size() == 3u);
  BOOST_TEST(eps[0].host == "192.168.1.2");
  BOOST_TEST((eps[1] == Endpoint{EndpointKind::Candidate, "11.0.0.5", 4224}));
  BOOST_TEST(eps[2].host == "10.1.2.3");
  auto bound = local_endpoints("127.0.0.1", 5000, {"192.168.1.2"});
  BOOST_REQUIRE(bound.size() == 1u);
  BOOST_TEST((bound[0] == Endpoint{EndpointKind::Loopback, "127.0.0.1", 5000}));
}

BOOST_AUTO_TEST_SUITE_END()
