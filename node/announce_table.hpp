#pragma once
// What one served repository has told one swarm, and what it still owes it.
// A plain state machine, no I/O: scans and put results go in, due puts come out, so
// tests drive it with their own clock.
//  - a new key gets a provider record at once; an unchanged key is put again every
//    refresh period (the same bytes, so the DHT only extends its life);
//  - a dropped key gets a tombstone (present=false, next sequence number) that outlives
//    the old record, then is forgotten;
//  - a failed put is retried with exponential backoff.
#include <chrono>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/result.hpp"

namespace annexswarm {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

struct AnnounceJob {
  std::string key;
  bool present = true;
  std::uint16_t seq = 0;
};

class AnnounceTable {
public:
  AnnounceTable(std::chrono::seconds refresh, std::chrono::seconds record_ttl);

  struct Delta {
    std::size_t added = 0;
    std::size_t removed = 0;
  };
  // `keys` is the full sorted list of keys present now.
  Delta apply_scan(const std::vector<std::string>& keys, WallTime now);

  std::vector<AnnounceJob> take_due(WallTime now, std::size_t max);
  void on_result(const AnnounceJob& job, bool ok, WallTime now);
  std::optional<WallTime> next_due();
  // After the DHT reconnects: retry failed puts now instead of after their backoff.
  void retry_failed(WallTime now);

  std::size_t present_count() const { return present_; }
  std::size_t confirmed_count() const;  // present keys whose current record is on the DHT
  std::size_t in_flight() const { return in_flight_; }
  bool has_present(std::string_view key) const;

  // One line per key: "P|D <seq> <last-ok-unix> <key>".
  std::string save() const;
  // Restores a saved table; records confirmed before are refreshed on schedule, not at once.
  static Result<AnnounceTable> load(std::string_view text, std::chrono::seconds refresh,
                                    std::chrono::seconds record_ttl, WallTime now);

private:
  struct Entry {
    std::uint16_t seq = 0;
    bool present = true;
    bool in_flight = false;
    bool confirmed = false;
    std::uint32_t failures = 0;
    WallTime due{};
    WallTime last_ok{};
  };
  struct Due {
    WallTime at;
    std::string key;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  void schedule(const std::string& key, Entry& e, WallTime at);
  void mark_changed(const std::string& key, Entry& e, bool present, WallTime now);
  std::chrono::seconds refresh_for(std::string_view key) const;

  std::chrono::seconds refresh_;
  std::chrono::seconds ttl_;
  std::unordered_map<std::string, Entry> entries_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> queue_;
  std::size_t present_ = 0;
  std::size_t in_flight_ = 0;
};

}  // namespace annexswarm
