#include <boost/test/unit_test.hpp>

#include "transfer/rate_limiter.hpp"

using annexswarm::RateLimiter;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(rate_limiter)

BOOST_AUTO_TEST_CASE(unlimited_never_waits) {
  RateLimiter r;
  BOOST_TEST(!r.limited());
  BOOST_TEST((r.take(1 << 30, RateLimiter::Clock::now()) == RateLimiter::Clock::duration::zero()));
}

BOOST_AUTO_TEST_CASE(a_burst_goes_out_then_the_rest_is_paced) {
  RateLimiter r(1000, 500);  // 1000 B/s, 500 B burst
  auto t0 = RateLimiter::Clock::time_point{} + 1h;
  BOOST_TEST((r.take(500, t0) == RateLimiter::Clock::duration::zero()));
  auto wait = r.take(1000, t0);  // 1000 B in debt: one second
  BOOST_TEST(std::chrono::duration<double>(wait).count() == 1.0, boost::test_tools::tolerance(1e-9));
  // A second later the debt is paid; half a second more buys 500 B.
  BOOST_TEST((r.take(0, t0 + 1s) == RateLimiter::Clock::duration::zero()));
  BOOST_TEST((r.take(500, t0 + 1500ms) == RateLimiter::Clock::duration::zero()));
  BOOST_TEST((r.take(1, t0 + 1500ms) > RateLimiter::Clock::duration::zero()));
}

BOOST_AUTO_TEST_CASE(idling_never_saves_more_than_the_burst) {
  RateLimiter r(1000, 500);
  auto t0 = RateLimiter::Clock::time_point{} + 1h;
  r.take(0, t0);
  BOOST_TEST((r.take(500, t0 + 100s) == RateLimiter::Clock::duration::zero()));
  BOOST_TEST((r.take(100, t0 + 100s) > RateLimiter::Clock::duration::zero()));
}

BOOST_AUTO_TEST_SUITE_END()
