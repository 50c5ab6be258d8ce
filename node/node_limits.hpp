#pragma once
// Per-node limits a home-server user sets in a dotfile at the root of the node's store
// directory (`<store-dir>/.annex-swarm`; store-dir is <state-dir>/stores unless set),
// 'name = value' lines like the config:
//
//   storage = 50G          # most bytes the swarm stores here may hold (with store-space: the lower wins)
//   upload-rate = 2M       # bytes/s served (with the config's upload-rate: the lower wins)
//   download-rate = 10M    # bytes/s fetched
//   hours = 01:00-07:00    # when replication may run (local time; on-demand gets always run)
//
// The daemon reads it at start, when it changes (checked every poll-interval) and on SIGHUP.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.hpp"

namespace annexswarm {

struct HoursWindow {
  int from = 0, to = 0;  // minutes after midnight; to < from wraps past midnight
  bool contains(int minute_of_day) const;
  std::string text() const;
  friend bool operator==(const HoursWindow&, const HoursWindow&) = default;
};
Result<HoursWindow> parse_hours(std::string_view text);
// Whether now (local time) is inside the window; no window: always.
bool in_hours_now(const std::optional<HoursWindow>& hours);

struct NodeLimits {
  std::optional<std::uint64_t> storage;
  std::optional<double> upload_rate, download_rate;  // bytes per second; 0: no limit
  std::optional<HoursWindow> hours;
  friend bool operator==(const NodeLimits&, const NodeLimits&) = default;
};

// Every problem, "origin:line: ...", one per line.
Result<NodeLimits> parse_node_limits(std::string_view text, std::string_view origin);

// The dotfile's place: the root of the node's stores directory (store-dir).
std::filesystem::path limits_file(const std::filesystem::path& stores_dir);

// The lower of two rates where 0 means none.
double lower_rate(double a, std::optional<double> b);
// The lower of two byte limits where nullopt means none.
std::optional<std::uint64_t> lower_limit(std::optional<std::uint64_t> a, std::optional<std::uint64_t> b);

}  // namespace annexswarm
