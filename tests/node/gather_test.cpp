// The fan-out/gather helper: every answer in, or the deadline with what came.
#include <boost/test/unit_test.hpp>

#include "node/gather.hpp"
#include "protocol/result.hpp"
#include "tests/support/manual_timers.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
struct Asked {
  std::vector<Answer<int>> answers;  // the callback each source got, to answer later
  std::optional<std::vector<std::optional<int>>> result;
  int done_calls = 0;
};

void start(test::ManualTimers& timers, Asked& a, std::size_t n) {
  gather<int>(
      timers, n, 10s, [&](std::size_t, Answer<int> answer) { a.answers.push_back(std::move(answer)); },
      [&](std::vector<std::optional<int>> r) {
        a.result = std::move(r);
        ++a.done_calls;
      });
}
}  // namespace

BOOST_AUTO_TEST_SUITE(gather_helper)

BOOST_AUTO_TEST_CASE(all_answers_in_time_are_handed_over_together_once_the_last_arrives) {
  test::ManualTimers timers;
  Asked a;
  start(timers, a, 3);
  a.answers[2](30);
  a.answers[0](10);
  BOOST_TEST(!a.result);
  a.answers[1](20);
  BOOST_REQUIRE(a.result);
  BOOST_TEST((*a.result == std::vector<std::optional<int>>{10, 20, 30}));
  timers.advance(1min);
  BOOST_TEST(a.done_calls == 1);
  BOOST_TEST(timers.armed() == 0u);
}

BOOST_AUTO_TEST_CASE(one_answer_late_is_dropped_and_the_rest_go_out_at_the_deadline) {
  test::ManualTimers timers;
  Asked a;
  start(timers, a, 2);
  a.answers[0](1);
  timers.advance(9s);
  BOOST_TEST(!a.result);
  timers.advance(1s);
  BOOST_REQUIRE(a.result);
  BOOST_TEST((*a.result == std::vector<std::optional<int>>{1, std::nullopt}));
  a.answers[1](2);  // after the deadline: nobody hears it
  BOOST_TEST(a.done_calls == 1);
  BOOST_TEST(!(*a.result)[1].has_value());
}

BOOST_AUTO_TEST_CASE(a_source_that_never_answers_and_drops_its_callback_still_ends_at_the_deadline) {
  test::ManualTimers timers;
  std::optional<std::vector<std::optional<int>>> result;
  gather<int>(
      timers, 2, 5s,
      [&](std::size_t i, Answer<int> answer) {
        if (i == 0) answer(7);  // the other callback is dropped here, never called
      },
      [&](std::vector<std::optional<int>> r) { result = std::move(r); });
  BOOST_TEST(!result);
  timers.advance(5s);
  BOOST_REQUIRE(result);
  BOOST_TEST((*result == std::vector<std::optional<int>>{7, std::nullopt}));
}

BOOST_AUTO_TEST_CASE(all_sources_failing_at_once_end_the_gather_at_once) {
  test::ManualTimers timers;
  std::optional<std::vector<std::optional<Result<int>>>> result;
  gather<Result<int>>(
      timers, 3, 5s, [&](std::size_t, Answer<Result<int>> answer) { answer(Error{"cannot connect"}); },
      [&](std::vector<std::optional<Result<int>>> r) { result = std::move(r); });
  BOOST_REQUIRE(result);  // no waiting for the deadline
  for (const auto& r : *result) {
    BOOST_REQUIRE(r);
    BOOST_TEST(!r->ok());
    BOOST_TEST(r->error() == "cannot connect");
  }
}

BOOST_AUTO_TEST_CASE(a_second_answer_from_one_source_does_not_count_twice) {
  test::ManualTimers timers;
  Asked a;
  start(timers, a, 2);
  a.answers[0](1);
  a.answers[0](99);
  BOOST_TEST(!a.result);
  a.answers[1](2);
  BOOST_REQUIRE(a.result);
  BOOST_TEST((*a.result == std::vector<std::optional<int>>{1, 2}));
}

BOOST_AUTO_TEST_CASE(nobody_to_ask_is_an_empty_answer_at_once) {
  test::ManualTimers timers;
  Asked a;
  start(timers, a, 0);
  BOOST_REQUIRE(a.result);
  BOOST_TEST(a.result->empty());
}

BOOST_AUTO_TEST_SUITE_END()
