#include <boost/test/unit_test.hpp>

#include "nat/mapping_schedule.hpp"

using namespace annexswarm::nat;
using namespace std::chrono_literals;
using Step = MappingSchedule::Step;
using State = MappingSchedule::State;

namespace {
const MappingSchedule::Clock::time_point t0{};
MappingSchedule make() { return MappingSchedule({3600s, 5s, 300s}); }
}  // namespace

BOOST_AUTO_TEST_SUITE(mapping_schedule)

BOOST_AUTO_TEST_CASE(nothing_happens_before_start) {
  auto s = make();
  BOOST_TEST(!s.take(t0 + 1h).has_value());
  BOOST_TEST(!s.deadline().has_value());
  BOOST_TEST((s.state() == State::Idle));
}

BOOST_AUTO_TEST_CASE(discover_then_map_then_renew_at_half_the_granted_lease) {
  auto s = make();
  s.start(t0);
  BOOST_TEST((s.take(t0) == Step::Discover));
  BOOST_TEST(!s.take(t0).has_value());  // in progress: nothing else is due
  s.discovered(true, t0 + 2s);
  BOOST_TEST((s.take(t0 + 2s) == Step::Map));
  s.mapped(true, 600s, t0 + 3s);
  BOOST_TEST(s.is_mapped());
  BOOST_TEST((*s.deadline() == t0 + 3s + 300s));
  BOOST_TEST(!s.take(t0 + 3s + 299s).has_value());
  BOOST_TEST((s.take(t0 + 3s + 300s) == Step::Renew));
  BOOST_TEST(s.is_mapped());  // still mapped while renewing
  s.renewed(true, 600s, t0 + 304s);
  BOOST_TEST((*s.deadline() == t0 + 604s));
}

BOOST_AUTO_TEST_CASE(a_permanent_mapping_is_checked_as_often_as_the_lease_asked_for) {
  auto s = make();
  s.start(t0);
  s.take(t0);
  s.discovered(true, t0);
  s.take(t0);
  s.mapped(true, 0s, t0);
  BOOST_TEST((*s.deadline() == t0 + 1800s));
}

BOOST_AUTO_TEST_CASE(no_router_backs_off_exponentially_up_to_the_cap) {
  auto s = make();
  s.start(t0);
  auto now = t0;
  std::vector<std::chrono::seconds> waits;
  for (int i = 0; i < 9; ++i) {
    BOOST_REQUIRE((s.take(now) == Step::Discover));
    s.discovered(false, now);
    BOOST_TEST((s.state() == State::WaitingToRetry));
    auto next = *s.deadline();
    waits.push_back(std::chrono::duration_cast<std::chrono::seconds>(next - now));
    now = next;
  }
  std::vector<std::chrono::seconds> expected{5s, 10s, 20s, 40s, 80s, 160s, 300s, 300s, 300s};
  BOOST_TEST(waits == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_failed_renewal_looks_for_the_router_at_once_and_success_resets_the_backoff) {
  auto s = make();
  s.start(t0);
  s.take(t0);
  s.discovered(false, t0);  // backoff 5 s
  s.take(t0 + 5s);
  s.discovered(true, t0 + 5s);
  s.take(t0 + 5s);
  s.mapped(true, 60s, t0 + 5s);
  BOOST_TEST((s.take(t0 + 35s) == Step::Renew));
  s.renewed(false, 0s, t0 + 35s);
  BOOST_TEST(!s.is_mapped());
  BOOST_TEST((s.take(t0 + 35s) == Step::Discover));
  s.discovered(false, t0 + 36s);
  BOOST_TEST((*s.deadline() == t0 + 41s));  // the backoff started again from 5 s
}

BOOST_AUTO_TEST_CASE(a_refused_mapping_waits_before_trying_again) {
  auto s = make();
  s.start(t0);
  s.take(t0);
  s.discovered(true, t0);
  s.take(t0);
  s.mapped(false, 0s, t0);
  BOOST_TEST(!s.is_mapped());
  BOOST_TEST(!s.take(t0 + 4s).has_value());
  BOOST_TEST((s.take(t0 + 5s) == Step::Discover));
}

BOOST_AUTO_TEST_SUITE_END()
