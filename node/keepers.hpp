#pragma once
// Who keeps the whole copies of a replicated swarm store's keys (issue 17), decided by
// every holder alike with no coordinator, and what a holder does about it. Pure: the
// replica service feeds it what the last sweep saw (who answered, who holds the key, what
// each offers) and acts on the plan.
//
// The keepers of a key are the `copies` best of the live candidates (the nodes of the
// store's keep-on groups) by weighted rendezvous hashing of the key, so every node picks
// the same ones, and a member joining or leaving moves only the keys it wins or held. The
// weight is the space a candidate offers, rounded down to a power of two: a node filling
// up does not reshuffle keys at every byte, and a holder counts the key's size back in. A
// candidate that does not hold the key needs room for it; one that holds it has room.
#include <cstdint>
#include <set>
#include <string_view>
#include <vector>

#include "protocol/swarm_token.hpp"

namespace annexswarm {

struct KeeperCandidate {
  NodeId node;
  std::uint64_t offer = 0;  // bytes the node offers its swarm stores now
  bool holds = false;       // holds a whole copy of the key in the store
};

// The key's keepers, best first (fewer than `copies` when fewer candidates qualify).
std::vector<NodeId> choose_keepers(std::string_view key, std::uint64_t size,
                                   const std::vector<KeeperCandidate>& live, unsigned copies);

// What a holder of a key does in one sweep.
struct HolderPlan {
  // Keepers lacking the key, as a chain: the first is asked to TAKE it from us and to hand
  // it on to the second while it fetches, and so on (each serves the chunks it has to the
  // next), so every node sends about one copy however many keepers fill at once.
  std::vector<NodeId> push_to;
  std::vector<NodeId> prove;       // keepers to challenge before our copy goes
  bool trim_after_proofs = false;  // not a keeper: drop ours once every one of `prove` proved it
  bool below_target = false;       // fewer than `copies` keepers hold it
};

// `holders`: the live nodes that said they hold a copy (this node among them).
// `refused`: keepers that would not take the key lately (busy, out of hours, no room).
//  - A keeper that holds it starts a chain through every keeper lacking it.
//  - A holder that is no keeper (the uploader) does so only while no keeper holds it: the
//    first copy comes from it, later ones from the keepers.
//  - A holder that is no keeper drops its copy only once `copies` keepers hold it, after
//    each has proved it (never below `copies`, never the last copy).
HolderPlan plan_for_holder(const NodeId& self, const std::vector<NodeId>& keepers, const std::set<NodeId>& holders,
                           const std::set<NodeId>& refused, unsigned copies);

}  // namespace annexswarm
