#include "node/keepers.hpp"

#include <algorithm>
#include <bit>

#include "erasure/placement.hpp"

namespace annexswarm {

std::vector<NodeId> choose_keepers(std::string_view key, std::uint64_t size,
                                   const std::vector<KeeperCandidate>& live, unsigned copies) {
  std::vector<std::pair<double, NodeId>> ranked;
  std::set<NodeId> seen;
  for (const auto& c : live) {
    if ((!c.holds && c.offer < size) || !seen.insert(c.node).second) continue;
    // In MiB, rounded down to a power of two; a holder weighs what it would offer without
    // the key, so taking it in does not move it.
    auto mib = (c.offer + (c.holds ? size : 0)) >> 20;
    double weight = mib ? static_cast<double>(std::bit_floor(mib)) : 1.0;
    ranked.emplace_back(erasure::rendezvous_score(key, c.node, weight), c.node);
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<NodeId> out;
  for (std::size_t i = 0; i < ranked.size() && i < copies; ++i) out.push_back(ranked[i].second);
  return out;
}

HolderPlan plan_for_holder(const NodeId& self, const std::vector<NodeId>& keepers, const std::set<NodeId>& holders,
                           const std::set<NodeId>& refused, unsigned copies) {
  HolderPlan plan;
  std::vector<NodeId> holding, lacking;
  for (const auto& k : keepers) (holders.count(k) ? holding : lacking).push_back(k);
  plan.below_target = holding.size() < copies;
  bool keeper = std::find(keepers.begin(), keepers.end(), self) != keepers.end();
  if (keeper) {
    for (const auto& k : lacking)
      if (!refused.count(k)) plan.push_to.push_back(k);
    return plan;
  }
  if (holding.empty()) {
    for (const auto& k : lacking)
      if (!refused.count(k)) plan.push_to.push_back(k);
    return plan;
  }
  if (copies > 0 && holding.size() >= copies) {
    plan.prove = holding;
    plan.trim_after_proofs = true;
  }
  return plan;
}

}  // namespace annexswarm
