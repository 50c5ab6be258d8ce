#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include "node/announce_table.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
const std::string kA = "WORM-s1-m1--a";
const std::string kB = "WORM-s1-m1--b";
const std::string kC = "WORM-s1-m1--c";
const WallTime kT0 = WallTime(std::chrono::seconds(1'700'000'000));

AnnounceTable table() { return AnnounceTable(600s, 3900s); }

void confirm_all(AnnounceTable& t, WallTime now) {
  for (auto& job : t.take_due(now, 1000)) t.on_result(job, true, now);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(announce_table)

BOOST_AUTO_TEST_CASE(new_keys_are_due_at_once) {
  auto t = table();
  auto delta = t.apply_scan({kA, kB}, kT0);
  BOOST_TEST(delta.added == 2u);
  auto jobs = t.take_due(kT0, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 2u);
  BOOST_TEST(jobs[0].present);
  BOOST_TEST(t.in_flight() == 2u);
  BOOST_TEST(t.take_due(kT0, 10).empty());  // in flight, not handed out twice
}

BOOST_AUTO_TEST_CASE(take_due_respects_the_budget) {
  auto t = table();
  t.apply_scan({kA, kB, kC}, kT0);
  BOOST_TEST(t.take_due(kT0, 2).size() == 2u);
  BOOST_TEST(t.take_due(kT0, 2).size() == 1u);
}

BOOST_AUTO_TEST_CASE(an_unchanged_scan_announces_nothing_new) {
  auto t = table();
  t.apply_scan({kA, kB}, kT0);
  confirm_all(t, kT0);
  auto delta = t.apply_scan({kA, kB}, kT0 + 1s);
  BOOST_TEST(delta.added == 0u);
  BOOST_TEST(delta.removed == 0u);
  BOOST_TEST(t.take_due(kT0 + 1s, 10).empty());
  BOOST_TEST(t.confirmed_count() == 2u);
}

BOOST_AUTO_TEST_CASE(confirmed_records_are_refreshed_before_the_period_ends) {
  auto t = table();
  t.apply_scan({kA}, kT0);
  confirm_all(t, kT0);
  auto due = t.next_due();
  BOOST_REQUIRE(due.has_value());
  BOOST_TEST((*due > kT0 + 470s));  // spread over the last fifth of the period
  BOOST_TEST((*due <= kT0 + 600s));
  auto jobs = t.take_due(kT0 + 600s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].seq == 0u);  // same record, same sequence: a refresh
}

BOOST_AUTO_TEST_CASE(a_dropped_key_gets_a_tombstone_then_is_forgotten) {
  auto t = table();
  t.apply_scan({kA, kB}, kT0);
  confirm_all(t, kT0);
  auto delta = t.apply_scan({kB}, kT0 + 10s);
  BOOST_TEST(delta.removed == 1u);
  BOOST_TEST(t.present_count() == 1u);
  auto jobs = t.take_due(kT0 + 10s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].key == kA);
  BOOST_TEST(!jobs[0].present);
  BOOST_TEST(jobs[0].seq == 1u);
  t.on_result(jobs[0], true, kT0 + 10s);
  BOOST_TEST(!t.has_present(kA));
  // After the record lifetime the tombstone is dropped, not re-put.
  auto later = t.take_due(kT0 + 10s + 3900s, 10);
  for (const auto& j : later) BOOST_TEST(j.key != kA);
}

BOOST_AUTO_TEST_CASE(a_key_that_comes_back_gets_a_newer_sequence) {
  auto t = table();
  t.apply_scan({kA}, kT0);
  confirm_all(t, kT0);
  t.apply_scan({}, kT0 + 1s);
  confirm_all(t, kT0 + 1s);
  t.apply_scan({kA}, kT0 + 2s);
  auto jobs = t.take_due(kT0 + 2s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].present);
  BOOST_TEST(jobs[0].seq == 2u);
}

BOOST_AUTO_TEST_CASE(failed_puts_back_off_and_retry_on_reconnect) {
  auto t = table();
  t.apply_scan({kA}, kT0);
  auto jobs = t.take_due(kT0, 10);
  t.on_result(jobs[0], false, kT0);
  BOOST_TEST(t.take_due(kT0 + 1s, 10).empty());
  BOOST_TEST(t.take_due(kT0 + 5s, 10).size() == 1u);
  t.on_result({kA, true, 0}, false, kT0 + 5s);
  BOOST_TEST(t.take_due(kT0 + 10s, 10).empty());  // second failure waits longer
  t.retry_failed(kT0 + 11s);
  BOOST_TEST(t.take_due(kT0 + 11s, 10).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_change_during_a_put_is_owed_afterwards) {
  auto t = table();
  t.apply_scan({kA}, kT0);
  auto jobs = t.take_due(kT0, 10);
  t.apply_scan({}, kT0 + 1s);  // dropped while its put is in flight
  t.on_result(jobs[0], true, kT0 + 2s);
  auto next = t.take_due(kT0 + 2s, 10);
  BOOST_REQUIRE_EQUAL(next.size(), 1u);
  BOOST_TEST(!next[0].present);
}

BOOST_AUTO_TEST_CASE(saved_state_restores_and_schedules_refresh_not_reannounce) {
  auto t = table();
  t.apply_scan({kA, kB}, kT0);
  confirm_all(t, kT0);
  t.apply_scan({kB}, kT0 + 1s);
  auto text = t.save();
  auto loaded = AnnounceTable::load(text, 600s, 3900s, kT0 + 60s);
  BOOST_REQUIRE_MESSAGE(loaded, loaded.error());
  BOOST_TEST(loaded->present_count() == 1u);
  BOOST_TEST(loaded->confirmed_count() == 1u);
  auto jobs = loaded->take_due(kT0 + 60s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);  // only the unconfirmed tombstone of kA
  BOOST_TEST(jobs[0].key == kA);
  BOOST_TEST(!jobs[0].present);
}

BOOST_AUTO_TEST_CASE(corrupt_saved_state_is_refused) {
  BOOST_TEST(!AnnounceTable::load("P 1 0\n", 600s, 3900s, kT0));
  BOOST_TEST(!AnnounceTable::load("X 1 0 " + kA + "\n", 600s, 3900s, kT0));
  BOOST_TEST(!AnnounceTable::load("P 1 0 ../etc\n", 600s, 3900s, kT0));
  BOOST_TEST(!AnnounceTable::load("P 1 0 " + kA + "\nP 1 0 " + kA + "\n", 600s, 3900s, kT0));
}

BOOST_AUTO_TEST_SUITE_END()
