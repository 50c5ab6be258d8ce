#include "erasure/placement.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "protocol/crypto.hpp"

namespace annexswarm::erasure {

// Schindelhauer and Schomaker's weighted rendezvous hashing.
double rendezvous_score(std::string_view key, const NodeId& node, double weight) {
  Bytes input(key.begin(), key.end());
  input.push_back(0);
  input.insert(input.end(), node.bytes.begin(), node.bytes.end());
  auto d = crypto::sha256(input);
  std::uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = x << 8 | d[i];
  double h = (static_cast<double>(x >> 11) + 0.5) / 9007199254740992.0;  // 53 bits, never 0 or 1
  return -std::max(1.0, weight) / std::log(h);
}

namespace {
double score(std::string_view key, const StoreOffer& member) {
  // Weights in MiB keep the doubles tame; a node with room weighs at least 1.
  return rendezvous_score(key, member.node, static_cast<double>(member.free_bytes) / 1048576.0);
}
}  // namespace

std::vector<NodeId> place_shares(std::string_view key, const std::vector<StoreOffer>& members, std::size_t count,
                                 std::uint64_t share_bytes) {
  std::vector<std::pair<double, NodeId>> ranked;
  std::set<NodeId> seen;
  for (const auto& m : members) {
    if (m.free_bytes < share_bytes || !seen.insert(m.node).second) continue;
    ranked.emplace_back(score(key, m), m.node);
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<NodeId> out;
  for (std::size_t i = 0; i < ranked.size() && i < count; ++i) out.push_back(ranked[i].second);
  return out;
}

}  // namespace annexswarm::erasure
