// Who keeps a replicated store's keys (node/keepers.hpp): every node computes the same
// keepers, a change of members moves only the keys it should, and a holder's plan never
// drops a copy below the target.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>

#include "node/keepers.hpp"

using namespace annexswarm;

namespace {
constexpr std::uint64_t kGiB = 1ull << 30;

NodeId node(int i) {
  NodeId n;
  n.bytes.fill(0);
  n.bytes[0] = static_cast<std::uint8_t>(i);
  n.bytes[1] = 0x5a;
  return n;
}

std::vector<KeeperCandidate> six(std::uint64_t offer = 100 * kGiB) {
  std::vector<KeeperCandidate> out;
  for (int i = 1; i <= 6; ++i) out.push_back({node(i), offer, false});
  return out;
}

std::string key(int i) { return "SHA256E-s1048576--" + std::to_string(i) + "abc.bin"; }
}  // namespace

BOOST_AUTO_TEST_SUITE(keepers)

BOOST_AUTO_TEST_CASE(every_node_picks_the_same_keepers_whatever_order_it_lists_the_members_in) {
  auto members = six();
  auto first = choose_keepers(key(1), 1 << 20, members, 3);
  BOOST_TEST(first.size() == 3u);
  std::reverse(members.begin(), members.end());
  BOOST_TEST((choose_keepers(key(1), 1 << 20, members, 3) == first));
  std::rotate(members.begin(), members.begin() + 2, members.end());
  BOOST_TEST((choose_keepers(key(1), 1 << 20, members, 3) == first));
}

BOOST_AUTO_TEST_CASE(a_member_without_room_is_never_chosen_unless_it_holds_the_key) {
  auto members = six(64u << 20);
  members[2].offer = 10u << 20;  // storage = 10M
  for (int k = 0; k < 200; ++k) {
    auto chosen = choose_keepers(key(k), 32u << 20, members, 5);
    BOOST_TEST(chosen.size() == 5u);
    BOOST_TEST((std::find(chosen.begin(), chosen.end(), node(3)) == chosen.end()), "key " << k);
  }
  // Holding it, it has room for it (its offer shrank by what it keeps).
  members[2].holds = true;
  std::size_t chosen_once = 0;
  for (int k = 0; k < 200; ++k) {
    auto chosen = choose_keepers(key(k), 32u << 20, members, 5);
    chosen_once += std::find(chosen.begin(), chosen.end(), node(3)) != chosen.end();
  }
  BOOST_TEST(chosen_once > 0u);
}

BOOST_AUTO_TEST_CASE(a_lost_member_moves_only_the_keys_it_kept_and_each_to_one_new_keeper) {
  auto members = six();
  auto without = members;
  without.erase(without.begin() + 4);  // node 5 is lost
  std::size_t moved = 0;
  for (int k = 0; k < 500; ++k) {
    auto before = choose_keepers(key(k), 1 << 20, members, 3);
    auto after = choose_keepers(key(k), 1 << 20, without, 3);
    bool kept_by_lost = std::find(before.begin(), before.end(), node(5)) != before.end();
    std::size_t same = 0;
    for (const auto& n : before) same += std::find(after.begin(), after.end(), n) != after.end();
    if (!kept_by_lost) {
      BOOST_TEST((after == before), "key " << k << " moved though its keepers are all there");
    } else {
      ++moved;
      BOOST_TEST(same == 2u, "key " << k << ": the two remaining keepers stay");
    }
  }
  BOOST_TEST(moved > 0u);
}

BOOST_AUTO_TEST_CASE(keys_spread_over_members_about_evenly_and_filling_up_a_little_moves_nothing) {
  auto members = six();
  std::map<NodeId, int> count;
  std::size_t moved = 0;
  auto fuller = members;
  fuller[0].offer -= 3 * kGiB;  // node 1 took in a few objects: same power of two
  for (int k = 0; k < 1200; ++k) {
    auto chosen = choose_keepers(key(k), 1 << 20, members, 3);
    for (const auto& n : chosen) ++count[n];
    moved += choose_keepers(key(k), 1 << 20, fuller, 3) != chosen;
  }
  // 1200 keys x 3 copies over 6 members: 600 each on average.
  for (const auto& [n, c] : count) BOOST_TEST((c > 450 && c < 750), n.hex() << " keeps " << c);
  BOOST_TEST(moved == 0u);
}

BOOST_AUTO_TEST_CASE(a_keeper_holding_the_key_chains_every_keeper_lacking_it_but_those_that_refused) {
  std::vector<NodeId> keepers{node(1), node(2), node(3), node(4)};
  auto plan = plan_for_holder(node(2), keepers, {node(2)}, {node(3)}, 4);
  BOOST_TEST((plan.push_to == std::vector<NodeId>{node(1), node(4)}));
  BOOST_TEST(plan.below_target);
  BOOST_TEST(!plan.trim_after_proofs);
}

BOOST_AUTO_TEST_CASE(the_uploader_starts_one_chain_through_the_keepers_and_leaves_the_rest_to_them) {
  std::vector<NodeId> keepers{node(1), node(2), node(3)};
  auto uploader = node(9);
  auto first = plan_for_holder(uploader, keepers, {uploader}, {}, 3);
  BOOST_TEST((first.push_to == std::vector<NodeId>{node(1), node(2), node(3)}));
  // The first keeper would not take it: the chain starts at the next one.
  auto next = plan_for_holder(uploader, keepers, {uploader}, {node(1)}, 3);
  BOOST_TEST((next.push_to == std::vector<NodeId>{node(2), node(3)}));
  // Once a keeper holds it, the uploader asks nobody and keeps its copy.
  auto later = plan_for_holder(uploader, keepers, {uploader, node(2)}, {}, 3);
  BOOST_TEST(later.push_to.empty());
  BOOST_TEST(!later.trim_after_proofs);
  BOOST_TEST(later.below_target);
}

BOOST_AUTO_TEST_CASE(a_holder_that_is_no_keeper_drops_only_once_every_keeper_holds_and_proves_it) {
  std::vector<NodeId> keepers{node(1), node(2), node(3)};
  auto extra = node(7);
  auto two = plan_for_holder(extra, keepers, {extra, node(1), node(3)}, {}, 3);
  BOOST_TEST(!two.trim_after_proofs);
  auto all = plan_for_holder(extra, keepers, {extra, node(1), node(2), node(3)}, {}, 3);
  BOOST_TEST(all.trim_after_proofs);
  BOOST_TEST(all.prove.size() == 3u);
  BOOST_TEST(!all.below_target);
  // A keeper never trims its own copy; with no keepers at all nobody drops anything.
  BOOST_TEST(!plan_for_holder(node(1), keepers, {node(1), node(2), node(3), extra}, {}, 3).trim_after_proofs);
  auto none = plan_for_holder(extra, {}, {extra}, {}, 3);
  BOOST_TEST(!none.trim_after_proofs);
  BOOST_TEST(none.push_to.empty());
}

BOOST_AUTO_TEST_SUITE_END()
