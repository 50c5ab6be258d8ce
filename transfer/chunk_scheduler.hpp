#pragma once
// Which chunk of an object to ask which peer for. Pure state, no I/O:
//  - a peer asks for work whenever it has a free request slot, so faster peers, which
//    free slots sooner, get more chunks;
//  - missing chunks go out lowest first;
//  - when nothing is missing but chunks are still in flight (the tail), an idle peer
//    gets a duplicate of one, so one slow peer cannot hold up the end (endgame);
//  - a peer that leaves or fails gives its chunks back;
//  - in order (head_lag > 0, for a reader following the file as it grows): once head_lag
//    chunks past the first missing one are done while it is still in flight with a single
//    peer, the next peer asking gets a duplicate of it, so one slow peer cannot hold the
//    prefix back while the others run ahead.
#include <cstddef>
#include <optional>
#include <set>
#include <vector>

namespace annexswarm {

class ChunkScheduler {
public:
  using PeerId = std::size_t;
  static constexpr std::size_t kMaxHolders = 2;  // a chunk is asked of at most two peers

  ChunkScheduler(std::size_t chunks, const std::vector<bool>& already_done, std::size_t head_lag = 0);

  std::optional<std::size_t> next_for(PeerId peer);
  // The chunk arrived (and passed its check); returns false when another peer had
  // delivered it first.
  bool on_done(std::size_t chunk);
  // A chunk taken as done turned out bad when the object was checked: missing again.
  void on_corrupt(std::size_t chunk);
  // The peer did not deliver the chunk (error, bad data, left).
  void on_failed(PeerId peer, std::size_t chunk);
  void remove_peer(PeerId peer);

  bool complete() const { return done_count_ == state_.size(); }
  std::size_t done_count() const { return done_count_; }
  std::size_t chunk_count() const { return state_.size(); }
  bool is_done(std::size_t chunk) const { return state_[chunk].done; }

private:
  struct Chunk {
    bool done = false;
    std::set<PeerId> holders;
  };
  std::vector<Chunk> state_;
  std::size_t done_count_ = 0;
  std::size_t first_missing_ = 0;  // no chunk below this is missing and unrequested
  std::size_t head_ = 0;           // no chunk below this is missing (the finished prefix)
  std::size_t head_lag_ = 0;
};

}  // namespace annexswarm
