// Reachability: what a round of dial-back answers means (decide), and the driver that
// asks helpers, keeps retrying, and feeds the endpoint book. Every verdict the NAT lab
// reaches as root is reached here without a network.
#include <boost/test/unit_test.hpp>

#include "node/reachability.hpp"
#include "tests/support/fake_dialer.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
Endpoint observed_probe() { return {EndpointKind::Public, "", 4224}; }
ReachProbe probe(Endpoint e, bool ok, std::vector<std::string> why = {}) { return {std::move(e), ok, std::move(why)}; }
}  // namespace

BOOST_AUTO_TEST_SUITE(reachability_verdicts)

BOOST_AUTO_TEST_CASE(nobody_asked_says_why_and_learns_nothing) {
  ReachRound r;
  r.helper_errors = "no other swarm node known yet";
  auto v = decide(r);
  BOOST_TEST(!v.learned);
  BOOST_TEST(v.summary == "not checked: no other swarm node known yet");
}

BOOST_AUTO_TEST_CASE(helpers_that_never_answered_learn_nothing) {
  ReachRound r;
  r.asked = 2;
  r.helper_errors = "no answer in time";
  auto v = decide(r);
  BOOST_TEST(!v.learned);
  BOOST_TEST(v.summary == "not checked: no helper answered (no answer in time)");
}

BOOST_AUTO_TEST_CASE(a_public_address_seen_and_dialled_back_is_confirmed_as_public) {
  ReachRound r{{probe(observed_probe(), true)}, "11.0.0.5", 1, 1, "", {}, ""};
  auto v = decide(r);
  BOOST_TEST(v.learned);
  BOOST_REQUIRE(v.confirmed.size() == 1u);
  BOOST_TEST((v.confirmed[0] == Endpoint{EndpointKind::Public, "11.0.0.5", 4224}));
  BOOST_TEST(v.summary == "reachable at 11.0.0.5:4224 (public)");
  BOOST_TEST(v.observed == "11.0.0.5");
}

BOOST_AUTO_TEST_CASE(the_mapped_port_and_the_observed_address_are_one_mapped_endpoint) {
  Endpoint mapped{EndpointKind::Mapped, "11.0.0.1", 4224};
  ReachRound r{{probe(observed_probe(), true), probe(mapped, true)}, "11.0.0.1", 1, 1, "", {mapped}, ""};
  auto v = decide(r);
  BOOST_REQUIRE(v.confirmed.size() == 1u);
  BOOST_TEST((v.confirmed[0] == mapped));
  BOOST_TEST(v.summary == "reachable at 11.0.0.1:4224 (mapped)");
}

BOOST_AUTO_TEST_CASE(a_mapping_made_during_the_check_still_names_the_observed_endpoint_mapped) {
  Endpoint mapped{EndpointKind::Mapped, "11.0.0.1", 4224};
  ReachRound r{{probe(observed_probe(), true)}, "11.0.0.1", 1, 1, "", {mapped}, ""};
  auto v = decide(r);
  BOOST_REQUIRE(v.confirmed.size() == 1u);
  BOOST_TEST((v.confirmed[0].kind == EndpointKind::Mapped));
}

BOOST_AUTO_TEST_CASE(behind_plain_nat_nothing_is_confirmed_and_the_summary_says_why) {
  ReachRound r{{probe(observed_probe(), false, {"cannot connect: Connection refused"})}, "11.0.0.2", 1, 1, "", {},
               "no port mapping (NAT-PMP: does not support nat-pmp)"};
  auto v = decide(r);
  BOOST_TEST(v.learned);
  BOOST_TEST(v.confirmed.empty());
  BOOST_TEST(v.summary ==
             "not reachable from outside: no port mapping (NAT-PMP: does not support nat-pmp); dial-back failed: "
             "11.0.0.2:4224: cannot connect: Connection refused; other nodes can reach this one only through a relay "
             "or on its LAN");
  BOOST_REQUIRE(v.probes.size() == 1u);
  BOOST_TEST(v.probes[0].endpoint.host == "11.0.0.2");  // status lists it as failed, with its address
}

BOOST_AUTO_TEST_CASE(a_private_observed_address_is_never_confirmed) {
  // The helper sits on our LAN: it sees 10.0.1.2, which says nothing about the internet.
  ReachRound r{{probe(observed_probe(), true)}, "10.0.1.2", 1, 1, "", {}, ""};
  auto v = decide(r);
  BOOST_TEST(v.learned);
  BOOST_TEST(v.confirmed.empty());
  BOOST_TEST(v.summary.starts_with("not reachable from outside"));
}

BOOST_AUTO_TEST_CASE(a_global_ipv6_address_that_passed_is_confirmed_beside_a_failed_v4_one) {
  Endpoint v6{EndpointKind::Public, "2001:db8:1::2", 4224};
  ReachRound r{{probe(observed_probe(), false, {"no answer within 5 s"}), probe(v6, true)}, "11.0.0.1", 1, 1, "", {}, ""};
  auto v = decide(r);
  BOOST_REQUIRE(v.confirmed.size() == 1u);
  BOOST_TEST((v.confirmed[0] == v6));
  BOOST_TEST(v.summary == "reachable at [2001:db8:1::2]:4224 (public)");
}

BOOST_AUTO_TEST_CASE(an_endpoint_failed_by_one_helper_and_reached_by_another_counts_as_reached) {
  Endpoint pub{EndpointKind::Public, "11.0.0.9", 4224};
  ReachRound r{{probe(observed_probe(), true, {"refused"}), probe(pub, true, {"timed out"})}, "11.0.0.9", 2, 2, "", {}, ""};
  auto v = decide(r);
  BOOST_REQUIRE(v.confirmed.size() == 1u);
  BOOST_TEST(v.summary == "reachable at 11.0.0.9:4224 (public)");
}

BOOST_AUTO_TEST_CASE(no_mapping_note_names_the_routers_answer_or_the_setting) {
  BOOST_TEST(nat_note(nullptr, nat::NatMethod::None) == "port mapping off (--nat none)");
  BOOST_TEST(nat_note(nullptr, nat::NatMethod::Auto) == "");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {
// The driver with fake helpers: answers come when the test says.
struct Driver {
  test::ManualTimers timers;
  std::vector<ContactRecord> published;
  EndpointBook book{timers, {NodeId{}, 3000s, false},
                    {[] { return std::vector<Endpoint>{}; },
                     [this](const ContactRecord& c, bool) { published.push_back(c); },
                     [] { return true; }}};
  std::vector<FetchSource> bootstrap, members;
  std::vector<std::pair<peer::DialBack, std::function<void(Result<peer::Frame>)>>> asked;
  int verdicts = 0;
  std::unique_ptr<Reachability> reach;

  explicit Driver(Reachability::Settings settings = {"", 4224, nat::NatMethod::None, 1800s, true, "", true}) {
    reach = std::make_unique<Reachability>(
        timers, book, nullptr, settings,
        Reachability::Mediator{[this](bool from_dht, std::function<void(std::vector<FetchSource>)> done) {
                                 done(from_dht ? members : bootstrap);
                               },
                               [this](const FetchSource&, const peer::DialBack& r, std::function<void(Result<peer::Frame>)> a) {
                                 asked.emplace_back(r, std::move(a));
                               },
                               [] { return std::vector<std::string>{"11.0.0.7", "192.168.1.4"}; },
                               [this] { ++verdicts; }});
  }
  static FetchSource helper() { return {{NodeId{}, {asio::ip::tcp::endpoint(asio::ip::make_address("11.0.0.1"), 4224)}}, 0}; }
  void answer_all(bool ok, const std::string& observed) {
    auto pending = std::move(asked);
    asked.clear();
    for (auto& [request, a] : pending) a(peer::Frame{peer::DialBackReply{request.id, ok, observed, ok ? "" : "refused"}});
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(reachability_driver)

BOOST_AUTO_TEST_CASE(with_nobody_to_ask_it_retries_with_backoff_and_confirms_nothing) {
  Driver d;
  d.reach->start();
  BOOST_TEST(d.reach->status().summary == "not checked: no other swarm node known yet");
  BOOST_TEST(d.book.confirmed().empty());
  BOOST_TEST(d.verdicts == 0);
  d.members.push_back(Driver::helper());
  d.timers.advance(9s);
  BOOST_TEST(d.asked.empty());
  d.timers.advance(1s);  // the first retry, 10 s later, finds a helper
  BOOST_TEST(!d.asked.empty());
}

BOOST_AUTO_TEST_CASE(a_helper_that_reaches_us_confirms_each_candidate_and_the_book_publishes_it) {
  Driver d;
  d.bootstrap.push_back(Driver::helper());
  d.reach->start();
  // One probe for where the helper sees us, one for the public interface address.
  BOOST_REQUIRE(d.asked.size() == 2u);
  BOOST_TEST(d.asked[0].first.host == "");
  BOOST_TEST(d.asked[1].first.host == "11.0.0.7");
  d.answer_all(true, "11.0.0.7");
  BOOST_REQUIRE(d.book.confirmed().size() == 1u);
  BOOST_TEST(d.book.confirmed()[0].host == "11.0.0.7");
  BOOST_TEST(d.verdicts == 1);
  BOOST_REQUIRE(!d.published.empty());
  BOOST_TEST(d.published.back().endpoints.size() == 1u);
  BOOST_TEST(d.reach->status().summary == "reachable at 11.0.0.7:4224 (public)");
  // The next check comes a whole period later.
  d.timers.advance(1799s);
  BOOST_TEST(d.asked.empty());
  d.timers.advance(1s);
  BOOST_TEST(d.asked.size() == 2u);
}

BOOST_AUTO_TEST_CASE(an_advertised_port_is_checked_instead_of_the_peer_port) {
  // A container published on host port 5000 (its peer port 4224 inside): the helper is
  // asked to dial 5000 where it sees us, and the advertised public address at its port;
  // the interfaces' addresses at 4224 are not asked about.
  Reachability::Settings settings{"", 4224, nat::NatMethod::None, 1800s, true, "", true};
  settings.advertised = {{EndpointKind::Public, "11.0.0.9", 6000}};
  settings.observed_port = 5000;
  Driver d(settings);
  d.bootstrap.push_back(Driver::helper());
  d.reach->start();
  BOOST_REQUIRE(d.asked.size() == 2u);
  BOOST_TEST(d.asked[0].first.host == "");
  BOOST_TEST(d.asked[0].first.port == 5000u);
  BOOST_TEST(d.asked[1].first.host == "11.0.0.9");
  BOOST_TEST(d.asked[1].first.port == 6000u);
  d.answer_all(true, "11.0.0.8");
  BOOST_REQUIRE(d.book.confirmed().size() == 2u);
  BOOST_TEST(d.reach->status().summary == "reachable at 11.0.0.8:5000 (public), 11.0.0.9:6000 (public)");
}

BOOST_AUTO_TEST_CASE(a_check_asked_for_while_one_runs_runs_right_after_it) {
  Driver d;
  d.bootstrap.push_back(Driver::helper());
  d.reach->start();
  BOOST_REQUIRE(d.asked.size() == 2u);
  d.reach->check("the port mapping changed");
  BOOST_TEST(d.asked.size() == 2u);  // not twice at once
  d.answer_all(false, "11.0.0.7");
  BOOST_TEST(d.asked.size() == 2u);  // the second round started at once
  BOOST_TEST(d.book.confirmed().empty());
  BOOST_TEST(d.reach->status().summary.starts_with("not reachable from outside"));
}

BOOST_AUTO_TEST_CASE(helpers_that_fail_lead_to_the_dht_members_then_to_a_retry) {
  Driver d;
  d.bootstrap.push_back(Driver::helper());
  d.reach->start();
  for (auto& [r, a] : std::exchange(d.asked, {})) a(Error{"no answer in time"});
  // Bootstrap nodes gave nothing; no member on the DHT either: not checked, retry soon.
  BOOST_TEST(d.reach->status().summary == "not checked: no answer in time");
  BOOST_TEST(d.verdicts == 0);
  d.timers.advance(10s);
  BOOST_TEST(d.asked.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_member_from_the_internet_confirms_our_public_address_by_itself) {
  Driver d;
  d.reach->reached_from_outside("11.0.0.20", asio::ip::tcp::endpoint(asio::ip::make_address("11.0.0.7"), 4224));
  BOOST_REQUIRE(d.book.confirmed().size() == 1u);
  BOOST_TEST(d.verdicts == 1);
  // From a private address, or to another port, it says nothing.
  d.reach->reached_from_outside("192.168.1.9", asio::ip::tcp::endpoint(asio::ip::make_address("11.0.0.8"), 4224));
  d.reach->reached_from_outside("11.0.0.20", asio::ip::tcp::endpoint(asio::ip::make_address("11.0.0.8"), 9999));
  BOOST_TEST(d.book.confirmed().size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(dial_back_policy)

BOOST_AUTO_TEST_CASE(only_where_the_asker_is_seen_or_what_its_contact_record_says) {
  std::vector<std::string> own{"11.0.0.7", "192.168.1.2"};
  std::vector<Endpoint> contact{{EndpointKind::Mapped, "11.0.0.30", 5000, ""},
                                {EndpointKind::Lan, "192.168.1.30", 4224, ""},
                                {EndpointKind::Relay, "11.0.0.40", 4224, "ab"}};
  auto allowed = [&](std::string observed, std::string host, std::uint16_t port) {
    return dial_back_allowed({std::move(observed), std::move(host), port}, own, contact);
  };
  BOOST_TEST(allowed("11.0.0.20", "11.0.0.20", 4224));     // where it is seen, any port
  BOOST_TEST(allowed("11.0.0.20", "11.0.0.20", 6000));
  BOOST_TEST(allowed("11.0.0.20", "11.0.0.30", 5000));     // its record's mapped endpoint
  BOOST_TEST(!allowed("11.0.0.20", "11.0.0.30", 22));      // ...at that port only
  BOOST_TEST(!allowed("11.0.0.20", "11.0.0.99", 4224));    // anywhere else on the internet
  BOOST_TEST(!allowed("11.0.0.20", "11.0.0.40", 4224));    // a relay endpoint is the relay's
  BOOST_TEST(!allowed("11.0.0.20", "192.168.1.30", 4224)); // private, asker not on a private network
  BOOST_TEST(allowed("192.168.1.9", "192.168.1.30", 4224)); // ...unless it is
  BOOST_TEST(allowed("192.168.1.9", "192.168.1.9", 4224));
  BOOST_TEST(!allowed("11.0.0.7", "11.0.0.7", 4224));      // this node's own address, even if seen there
  BOOST_TEST(!allowed("192.168.1.2", "192.168.1.2", 4224));
  BOOST_TEST(!allowed("127.0.0.1", "127.0.0.1", 4224));    // loopback, link-local, reserved
  BOOST_TEST(!allowed("::1", "::1", 4224));
  BOOST_TEST(!allowed("169.254.3.4", "169.254.3.4", 4224));
  BOOST_TEST(!allowed("fe80::1", "fe80::1", 4224));
  BOOST_TEST(!allowed("11.0.0.20", "224.0.0.1", 4224));
  BOOST_TEST(!allowed("11.0.0.20", "0.0.0.0", 4224));
  BOOST_TEST(!allowed("11.0.0.20", "11.0.0.20", 0));
  BOOST_TEST(!allowed("11.0.0.20", "::ffff:11.0.0.7", 4224));  // own, written as IPv6
}

BOOST_AUTO_TEST_CASE(a_member_gets_a_few_dial_backs_a_minute_and_one_reason_for_every_failure) {
  test::ManualTimers timers;
  auto dialer = std::make_shared<test::FailingDialer>("cannot connect: Connection refused");
  int lookups = 0;
  DialBackResponder responder(timers, dialer, {SwarmToken::generate()},
                              {[] { return std::vector<std::string>{"11.0.0.7"}; },
                               [&](const NodeId&, std::size_t, std::function<void(std::vector<Endpoint>)> done) {
                                 ++lookups;
                                 done({});
                               }});
  NodeId asker = test::TestIdentity().id;
  std::vector<std::string> reasons;
  auto ask = [&](std::string host) {
    responder.dial_back(asker, 0, {"11.0.0.20", std::move(host), 4224},
                        [&](Result<bool> r) { reasons.push_back(r ? "ok" : r.error()); });
  };
  ask("11.0.0.20");  // dialled: fails, with the generic reason, not the connect error
  ask("11.0.0.99");  // not where it is seen, not in its record: never dialled
  BOOST_TEST(dialer->dialled.size() == 1u);
  BOOST_TEST(lookups == 1);
  constexpr auto kMinute = DialBackResponder::kPerMemberPerMinute;
  for (std::size_t i = 0; i < kMinute; ++i) ask("11.0.0.20");
  BOOST_TEST(dialer->dialled.size() == kMinute - 1);  // kMinute asks a minute in all, one of them refused
  for (const auto& r : reasons) BOOST_TEST(r == "could not reach you there");
  BOOST_TEST(responder.refused() == 3u);
  timers.advance(61s);
  ask("11.0.0.20");
  BOOST_TEST(dialer->dialled.size() == kMinute);
}

BOOST_AUTO_TEST_SUITE_END()
