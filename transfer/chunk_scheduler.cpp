#include "transfer/chunk_scheduler.hpp"

namespace annexswarm {

ChunkScheduler::ChunkScheduler(std::size_t chunks, const std::vector<bool>& already_done, std::size_t head_lag)
    : state_(chunks), head_lag_(head_lag) {
  for (std::size_t i = 0; i < chunks && i < already_done.size(); ++i)
    if (already_done[i]) {
      state_[i].done = true;
      ++done_count_;
    }
}

std::optional<std::size_t> ChunkScheduler::next_for(PeerId peer) {
  while (head_ < state_.size() && state_[head_].done) ++head_;
  if (head_lag_ > 0 && head_ < state_.size()) {
    // Every chunk below head_ is done, so done_count_ - head_ are done past it.
    auto& h = state_[head_];
    if (done_count_ - head_ >= head_lag_ && h.holders.size() == 1 && !h.holders.count(peer)) {
      h.holders.insert(peer);
      return head_;
    }
  }
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
  if (chunk < head_) head_ = chunk;
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
