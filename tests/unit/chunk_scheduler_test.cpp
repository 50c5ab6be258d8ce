#include <boost/test/unit_test.hpp>

#include "transfer/chunk_scheduler.hpp"

using annexswarm::ChunkScheduler;

BOOST_AUTO_TEST_SUITE(chunk_scheduler)

BOOST_AUTO_TEST_CASE(missing_chunks_go_out_lowest_first_each_once) {
  ChunkScheduler s(4, {});
  BOOST_TEST(*s.next_for(1) == 0u);
  BOOST_TEST(*s.next_for(2) == 1u);
  BOOST_TEST(*s.next_for(1) == 2u);
  BOOST_TEST(*s.next_for(2) == 3u);
}

BOOST_AUTO_TEST_CASE(resumed_chunks_are_not_asked_again) {
  ChunkScheduler s(3, {true, false, true});
  BOOST_TEST(s.done_count() == 2u);
  BOOST_TEST(*s.next_for(1) == 1u);
  BOOST_TEST(s.on_done(1));
  BOOST_TEST(s.complete());
}

BOOST_AUTO_TEST_CASE(the_tail_is_duplicated_to_idle_peers_at_most_twice) {
  ChunkScheduler s(2, {});
  BOOST_TEST(*s.next_for(1) == 0u);
  BOOST_TEST(*s.next_for(1) == 1u);
  // Nothing is missing: peer 2 duplicates chunk 0, peer 3 duplicates chunk 1.
  BOOST_TEST(*s.next_for(2) == 0u);
  BOOST_TEST(*s.next_for(3) == 1u);
  BOOST_TEST(!s.next_for(4).has_value());  // both already have two holders
  BOOST_TEST(s.on_done(0));
  BOOST_TEST(!s.on_done(0));  // the duplicate arriving later is not counted again
}

BOOST_AUTO_TEST_CASE(in_order_a_slow_head_chunk_is_asked_of_another_peer_once_others_run_ahead) {
  ChunkScheduler s(20, {}, 3);
  BOOST_TEST(*s.next_for(1) == 0u);  // peer 1 is slow with chunk 0
  BOOST_TEST(*s.next_for(2) == 1u);
  BOOST_TEST(s.on_done(1));
  BOOST_TEST(*s.next_for(2) == 2u);
  BOOST_TEST(s.on_done(2));
  BOOST_TEST(*s.next_for(2) == 3u);  // two done past the head: not yet
  BOOST_TEST(s.on_done(3));
  BOOST_TEST(*s.next_for(2) == 0u);  // three: the head is duplicated
  BOOST_TEST(*s.next_for(3) == 4u);  // and only once
  BOOST_TEST(s.on_done(0));
  BOOST_TEST(!s.on_done(0));
  // Without head_lag the same pattern never duplicates before the tail.
  ChunkScheduler plain(20, {});
  plain.next_for(1);
  for (std::size_t i = 1; i <= 5; ++i) {
    BOOST_TEST(*plain.next_for(2) == i);
    plain.on_done(i);
  }
}

BOOST_AUTO_TEST_CASE(a_failed_or_departed_peer_gives_its_chunks_back) {
  ChunkScheduler s(3, {});
  s.next_for(1);  // 0
  s.next_for(1);  // 1
  s.next_for(2);  // 2
  s.on_failed(1, 1);
  BOOST_TEST(*s.next_for(3) == 1u);
  s.remove_peer(2);
  BOOST_TEST(*s.next_for(3) == 2u);
  s.remove_peer(1);
  BOOST_TEST(*s.next_for(3) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
