#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include "node/announce_table.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
// Two keys in bucket 7, one in bucket 9.
const KeyIndex kA{7, 100}, kB{7, 200}, kC{9, 300};
const WallTime kT0 = WallTime(std::chrono::seconds(1'700'000'000));

AnnounceTable table() { return AnnounceTable(600s, 3900s); }

void confirm_all(AnnounceTable& t, WallTime now) {
  for (auto& job : t.take_due(now, 1000)) t.on_result(job, true, now);
}

const AnnounceJob* find(const std::vector<AnnounceJob>& jobs, std::uint32_t bucket) {
  for (const auto& j : jobs)
    if (j.bucket == bucket) return &j;
  return nullptr;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(announce_table)

BOOST_AUTO_TEST_CASE(new_keys_make_their_buckets_due_at_once) {
  auto t = table();
  auto delta = t.apply_scan({kC, kB, kA}, kT0);
  BOOST_TEST(delta.added == 3u);
  BOOST_TEST(delta.buckets == 2u);
  auto jobs = t.take_due(kT0, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 2u);
  const auto* b7 = find(jobs, 7);
  BOOST_REQUIRE(b7);
  BOOST_TEST((b7->tags == std::vector<std::uint64_t>{100, 200}));  // sorted
  BOOST_TEST(t.in_flight() == 2u);
  BOOST_TEST(t.take_due(kT0, 10).empty());  // in flight, not handed out twice
  BOOST_TEST(t.key_count() == 3u);
  BOOST_TEST(t.confirmed_keys() == 0u);
}

BOOST_AUTO_TEST_CASE(take_due_respects_the_budget) {
  auto t = table();
  t.apply_scan({kA, kC}, kT0);
  BOOST_TEST(t.take_due(kT0, 1).size() == 1u);
  BOOST_TEST(t.take_due(kT0, 1).size() == 1u);
  BOOST_TEST(t.take_due(kT0, 1).empty());
}

BOOST_AUTO_TEST_CASE(an_unchanged_scan_puts_nothing) {
  auto t = table();
  t.apply_scan({kA, kB, kC}, kT0);
  confirm_all(t, kT0);
  BOOST_TEST(t.confirmed_keys() == 3u);
  auto delta = t.apply_scan({kC, kA, kB, kA}, kT0 + 1s);  // order and repeats do not matter
  BOOST_TEST(delta.buckets == 0u);
  BOOST_TEST(t.take_due(kT0 + 1s, 10).empty());
}

BOOST_AUTO_TEST_CASE(confirmed_buckets_are_refreshed_before_the_period_ends) {
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

BOOST_AUTO_TEST_CASE(a_dropped_key_gives_its_bucket_a_new_version) {
  auto t = table();
  t.apply_scan({kA, kB, kC}, kT0);
  confirm_all(t, kT0);
  auto delta = t.apply_scan({kB, kC}, kT0 + 10s);
  BOOST_TEST(delta.removed == 1u);
  BOOST_TEST(!t.holds(kA));
  BOOST_TEST(t.holds(kB));
  auto jobs = t.take_due(kT0 + 10s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].bucket == 7u);
  BOOST_TEST(jobs[0].seq == 1u);
  BOOST_TEST((jobs[0].tags == std::vector<std::uint64_t>{200}));
}

BOOST_AUTO_TEST_CASE(an_emptied_bucket_is_put_empty_then_forgotten) {
  auto t = table();
  t.apply_scan({kA, kC}, kT0);
  confirm_all(t, kT0);
  t.apply_scan({kC}, kT0 + 1s);
  auto jobs = t.take_due(kT0 + 1s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].tags.empty());
  t.on_result(jobs[0], true, kT0 + 1s);
  // After the record lifetime nothing of bucket 7 is put again.
  for (const auto& j : t.take_due(kT0 + 1s + 3900s, 10)) BOOST_TEST(j.bucket != 7u);
  BOOST_TEST(t.save().find("B 7 ") == std::string::npos);
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
  BOOST_TEST(jobs[0].seq == 2u);
  BOOST_TEST(jobs[0].tags.size() == 1u);
}

BOOST_AUTO_TEST_CASE(failed_puts_back_off_and_retry_on_reconnect) {
  auto t = table();
  t.apply_scan({kA}, kT0);
  auto jobs = t.take_due(kT0, 10);
  t.on_result(jobs[0], false, kT0);
  BOOST_TEST(t.take_due(kT0 + 1s, 10).empty());
  jobs = t.take_due(kT0 + 5s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  t.on_result(jobs[0], false, kT0 + 5s);
  BOOST_TEST(t.take_due(kT0 + 10s, 10).empty());  // the second failure waits longer
  t.retry_failed(kT0 + 11s);
  BOOST_TEST(t.take_due(kT0 + 11s, 10).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_change_during_a_put_is_owed_afterwards) {
  auto t = table();
  t.apply_scan({kA, kB}, kT0);
  auto jobs = t.take_due(kT0, 10);
  t.apply_scan({kB}, kT0 + 1s);  // kA dropped while its bucket's put is in flight
  t.on_result(jobs[0], true, kT0 + 2s);
  BOOST_TEST(t.confirmed_keys() == 0u);
  auto next = t.take_due(kT0 + 2s, 10);
  BOOST_REQUIRE_EQUAL(next.size(), 1u);
  BOOST_TEST((next[0].tags == std::vector<std::uint64_t>{200}));
}

BOOST_AUTO_TEST_CASE(saved_state_refreshes_unchanged_buckets_on_schedule) {
  auto t = table();
  t.apply_scan({kA, kB, kC}, kT0);
  confirm_all(t, kT0);
  auto loaded = AnnounceTable::load(t.save(), 600s, 3900s, kT0 + 60s);
  BOOST_REQUIRE_MESSAGE(loaded, loaded.error());
  // The same keys after the restart: nothing is owed now.
  auto delta = loaded->apply_scan({kA, kB, kC}, kT0 + 60s);
  BOOST_TEST(delta.buckets == 0u);
  BOOST_TEST(loaded->confirmed_keys() == 3u);
  BOOST_TEST(loaded->take_due(kT0 + 60s, 10).empty());
}

BOOST_AUTO_TEST_CASE(saved_state_notices_what_changed_while_stopped) {
  auto t = table();
  t.apply_scan({kA, kB, kC}, kT0);
  confirm_all(t, kT0);
  auto loaded = AnnounceTable::load(t.save(), 600s, 3900s, kT0 + 60s);
  BOOST_REQUIRE(loaded);
  loaded->apply_scan({kC}, kT0 + 60s);  // kA and kB dropped while the daemon was down
  auto jobs = loaded->take_due(kT0 + 60s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].bucket == 7u);
  BOOST_TEST(jobs[0].seq == 1u);  // replaces the record put before the restart
  BOOST_TEST(jobs[0].tags.empty());
}

BOOST_AUTO_TEST_CASE(corrupt_saved_state_is_refused) {
  for (std::string bad : {"B 1 0\n", "X 1 0 0 0\n", "B 4096 0 0 0\n", "B 1 0 0 zz\n",
                          "B 1 0 0 0\nB 1 0 0 0\n", "B 1 0 0 0 extra\n", "B -1 0 0 0\n"})
    BOOST_TEST(!AnnounceTable::load(bad, 600s, 3900s, kT0), "accepted: " << bad);
  BOOST_TEST(AnnounceTable::load("B 1 3 1700000000 00ff\n\n", 600s, 3900s, kT0));
}

BOOST_AUTO_TEST_CASE(with_a_settle_time_changes_close_together_cost_one_put_and_a_change_undone_costs_none) {
  auto t = table();
  t.set_settle(1s);
  // A new bucket whose key comes and goes before its first put: forgotten, no put.
  t.apply_change(kC, true, kT0);
  BOOST_TEST(t.take_due(kT0, 10).empty());  // not before the settle time
  t.apply_change(kC, false, kT0 + 500ms);
  BOOST_TEST(t.take_due(kT0 + 2s, 10).empty());
  // Two keys into one bucket within the settle time: one put with both.
  t.apply_change(kA, true, kT0 + 3s);
  t.apply_change(kB, true, kT0 + 3s + 200ms);
  auto jobs = t.take_due(kT0 + 5s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST((jobs[0].tags == std::vector<std::uint64_t>{100, 200}));
  t.on_result(jobs[0], true, kT0 + 5s);
  BOOST_TEST(t.confirmed_keys() == 2u);
  // A key removed and put back before the settle time: the record says so already.
  t.apply_change(kB, false, kT0 + 6s);
  t.apply_change(kB, true, kT0 + 6s + 300ms);
  BOOST_TEST(t.take_due(kT0 + 8s, 10).empty());
  BOOST_TEST(t.confirmed_keys() == 2u);
  // A real change still goes out, after the settle time.
  t.apply_change(kA, false, kT0 + 9s);
  BOOST_TEST(t.take_due(kT0 + 9s, 10).empty());
  jobs = t.take_due(kT0 + 10s, 10);
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST((jobs[0].tags == std::vector<std::uint64_t>{200}));
}

BOOST_AUTO_TEST_SUITE_END()
