#pragma once
// What one served repository has told one swarm, and what it still owes it.
// Provider records are per key bucket (see KeyIndex): a plain state machine, no I/O:
// scans and put results go in, due bucket records come out, so tests drive it with
// their own clock.
//  - a bucket whose set of keys changed is due at once, with the next sequence number
//    (storage nodes replace a signed value only by a higher one);
//  - an unchanged bucket is put again every refresh period (the same bytes, so the DHT
//    only extends its life);
//  - a bucket that lost all its keys is put once empty, then forgotten after the
//    record lifetime;
//  - a failed put is retried with exponential backoff.
#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

struct AnnounceJob {
  std::uint32_t bucket = 0;
  std::uint16_t seq = 0;
  std::vector<std::uint64_t> tags;  // sorted, unique
};

class AnnounceTable {
public:
  AnnounceTable(std::chrono::seconds refresh, std::chrono::seconds record_ttl);

  struct Delta {
    std::size_t added = 0;    // keys
    std::size_t removed = 0;  // keys
    std::size_t buckets = 0;  // bucket records that changed
  };
  // `keys` are all keys present now, in any order.
  Delta apply_scan(std::vector<KeyIndex> keys, WallTime now);
  // One key came or went (a store this node keeps changed through it): only its bucket
  // is touched, so a store of many keys costs nothing like a scan per change.
  Delta apply_change(const KeyIndex& key, bool present, WallTime now);

  std::vector<AnnounceJob> take_due(WallTime now, std::size_t max);
  void on_result(const AnnounceJob& job, bool ok, WallTime now);
  std::optional<WallTime> next_due();
  // After the DHT reconnects: retry failed puts now instead of after their backoff.
  void retry_failed(WallTime now);
  // A changed bucket is put this long after the change, not at once, so changes close
  // together go out as one put, and a key that comes and goes again (git annex testremote,
  // a failed copy) costs no put at all: a bucket back to what its last put said is not put
  // again, and a new bucket emptied again before its first put is forgotten. 0: at once.
  void set_settle(WallClock::duration settle) { settle_ = settle; }

  std::size_t key_count() const { return keys_; }
  std::size_t confirmed_keys() const { return confirmed_keys_; }  // in records on the DHT
  std::size_t in_flight() const { return in_flight_; }
  bool holds(const KeyIndex& key) const;

  // One line per bucket: "B <bucket> <seq> <last-ok-unix> <digest>".
  std::string save() const;
  // Restores a saved table; a bucket whose keys are unchanged at the next scan is
  // refreshed on schedule, not put again at once.
  static Result<AnnounceTable> load(std::string_view text, std::chrono::seconds refresh,
                                    std::chrono::seconds record_ttl, WallTime now);

private:
  struct Entry {
    std::vector<std::uint64_t> tags;
    std::uint64_t digest = 0;
    std::uint16_t seq = 0;
    bool in_flight = false;
    bool confirmed = false;
    std::uint32_t failures = 0;
    WallTime due{};
    WallTime last_ok{};
    bool on_dht = false;           // a put of it was issued (or it was loaded): a record may exist
    bool put_known = false;        // put_digest is what the last successful put said
    std::uint64_t put_digest = 0;
    std::uint64_t sent_digest = 0;  // of the put in flight
  };
  struct Due {
    WallTime at;
    std::uint32_t bucket;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  void schedule(std::uint32_t bucket, Entry& e, WallTime at);
  void update_bucket(std::uint32_t bucket, std::vector<std::uint64_t> tags, WallTime now, Delta& delta);
  void set_tags(Entry& e, std::vector<std::uint64_t> tags);
  void set_confirmed(Entry& e, bool confirmed);
  std::chrono::seconds refresh_for(std::uint32_t bucket) const;

  std::chrono::seconds refresh_;
  std::chrono::seconds ttl_;
  std::unordered_map<std::uint32_t, Entry> buckets_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> queue_;
  std::size_t keys_ = 0;
  std::size_t confirmed_keys_ = 0;
  std::size_t in_flight_ = 0;
  WallClock::duration settle_{};
};

}  // namespace annexswarm
