#include "transfer/chunk_scheduler.hpp"

namespace annexswarm {

ChunkScheduler::ChunkScheduler(std::size_t chunks, const std::vector<bool>& already_done) : state_(chunks) {
  for (std::size_t i = 0; i < chunks && i < already_done.size(); ++i)
    if (already_done[i]) {
      state_[i].done = true;
      ++done_count_;
    }
}

std::optional<std::size_t> ChunkScheduler::next_for(PeerId peer) {
  for (std::size_t i = first_missing_; i < state_.size(); ++i) {
    auto& c = state_[i];
    if (!c.done && c.holders.empty()) {
      c.holders.insert(peer);
      return i;
    }
    if (i == first_missing_) ++first_missing_;
  }
  // Endgame: duplicate a chunk still in flight elsewhere.
  for (std::size_t i = 0; i < state_.size(); ++i) {
    auto& c = state_[i];
    if (!c.done && c.holders.size() < kMaxHolders && !c.holders.count(peer)) {
      c.holders.insert(peer);
      return i;
    }
  }
  return std::nullopt;
}

bool ChunkScheduler::on_done(std::size_t chunk) {
  auto& c = state_[chunk];
  c.holders.clear();
  if (c.done) return false;
  c.done = true;
  ++done_count_;
  return true;
}

void ChunkScheduler::on_corrupt(std::size_t chunk) {
  auto& c = state_[chunk];
  if (!c.done) return;
  c.done = false;
  --done_count_;
  if (chunk < first_missing_) first_missing_ = chunk;
}

void ChunkScheduler::on_failed(PeerId peer, std::size_t chunk) {
  auto& c = state_[chunk];
  c.holders.erase(peer);
  if (!c.done && c.holders.empty() && chunk < first_missing_) first_missing_ = chunk;
}

void ChunkScheduler::remove_peer(PeerId peer) {
  for (std::size_t i = 0; i < state_.size(); ++i)
    if (state_[i].holders.count(peer)) on_failed(peer, i);
}

}  // namespace annexswarm
