#pragma once
// The daemon's typed configuration. One setting table serves the config file and the
// command line, so both accept the same names and document the same defaults.
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/node_limits.hpp"
#include "nat/port_mapping.hpp"
#include "node/log.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

inline constexpr std::uint16_t kDefaultPort = 4224;
inline constexpr std::string_view kPublicBootstrap = "bootstrap.jami.net:4222";

struct DaemonConfig {
  std::filesystem::path state_dir;
  // Where the swarm stores live (and their dotfile, .annex-swarm); empty: <state_dir>/stores.
  std::filesystem::path store_dir;
  std::filesystem::path stores() const { return store_dir.empty() ? state_dir / "stores" : store_dir; }
  std::uint16_t port = kDefaultPort;
  std::string listen;  // bind address; empty = all interfaces
  std::vector<std::string> bootstrap{std::string(kPublicBootstrap)};
  std::vector<SwarmToken> swarms;
  std::vector<std::filesystem::path> repos;
  std::vector<std::string> repo_origins;  // where each repo was set ("FILE:LINE", "--repo"), for errors
  bool lan_discovery = true;
  double announce_rate = 400;  // DHT puts per second
  std::size_t announce_window = 256;  // puts in flight
  std::optional<std::chrono::seconds> announce_refresh;  // unset: chosen from bootstrap
  std::chrono::seconds poll_interval{5};
  std::chrono::seconds lookup_timeout{20};
  std::optional<std::uint16_t> peer_port;  // TCP port for peers; unset: the DHT's port number
  // Where other nodes dial this one when that is not where it listens (a port forwarded by
  // hand, a container published on another host port): "HOST:PORT", or ":PORT" for the
  // address a dial-back helper sees this node at (host empty). None: the interfaces'
  // addresses and the peer port.
  struct Advertised {
    std::string host;
    std::uint16_t port = 0;
    friend bool operator==(const Advertised&, const Advertised&) = default;
  };
  std::vector<Advertised> advertise;
  std::size_t max_peers = 64;              // peer links served at once
  double upload_rate = 0;                  // bytes per second served to peers; 0 = unlimited
  double upload_rate_per_peer = 0;         // the same, for one peer
  double download_rate = 0;                // bytes per second over all downloads; 0 = unlimited
  // Bytes offered to erasure-coded swarm stores (shares of other members' objects); unset:
  // the free space of the state dir's file system less a reserve; 0: none.
  std::optional<std::uint64_t> store_space;
  // The limits a node's dotfile may also set (node/node_limits.hpp); with store-space and
  // the dotfile's, the lower wins.
  std::optional<std::uint64_t> storage;
  std::optional<HoursWindow> hours;  // when replication may run
  std::chrono::seconds trash_grace{86400};  // objects removed from swarm stores are kept this long
  std::chrono::seconds repair_interval{6 * 3600};  // erasure-coded shares held here checked; 0: never
  std::chrono::seconds replicate_interval{300};    // replicated stores' keys held here checked; 0: never
  // OpenPGP fingerprints of who may sign the first version of the swarm rules this node
  // adopts (later versions: the admins the version held names).
  std::vector<std::string> rules_admins;
  // Services this node's owner lets members reach through `annex-swarm connect`
  // (expose.NAME = HOST:PORT, e.g. expose.ssh = 127.0.0.1:22); none by default.
  std::map<std::string, std::string> expose;
  // Names for targets of `annex-swarm connect` (alias.NAME = UUID or node id).
  std::map<std::string, std::string> aliases;
  std::chrono::seconds rules_check{30};  // how often the rules members publish are read
  std::chrono::seconds stall_timeout{30};  // a peer asked for data that sends nothing this long is given up
  nat::NatMethod nat = nat::NatMethod::Auto;  // port mapping on the home router
  std::chrono::seconds nat_lease{3600};
  std::chrono::seconds reachability_check{1800};  // dial-back again this often
  enum class RelayMode { Off, On, Auto };
  RelayMode relay = RelayMode::Auto;  // auto: relay once this node is confirmed reachable
  std::size_t relay_reservations = 2;  // relays to hold a reservation on when unreachable
  std::size_t relay_max_reservations = 64;
  std::size_t relay_max_circuits = 8;       // per reservation, open at once
  std::uint64_t relay_circuit_bytes = 0;    // per circuit; 0 = unlimited
  std::chrono::seconds relay_circuit_time{3600};
  double relay_rate = 0;                    // bytes per second over all circuits; 0 = unlimited
  // Where the settings came from, so SIGHUP can read them again: the config file, and the
  // command line's settings, which win over it.
  std::optional<std::filesystem::path> config_file;
  std::vector<std::pair<std::string, std::string>> cli_settings;
  log::Level log_level = log::Level::Info;
};

struct SettingDoc {
  std::string_view name;
  std::string_view value_hint;
  std::string_view default_text;
  std::string_view help;
  bool repeatable;
};
const std::vector<SettingDoc>& daemon_settings();

// Applies one setting; appends a message to `errors` when the value is bad.
void apply_setting(DaemonConfig& config, std::string_view name, std::string_view value,
                   std::vector<std::string>& errors, std::string_view origin);

// Parses a config file's text ("name = value" lines, '#' comments, list settings may
// repeat). Every problem is reported, with its line number.
void apply_config_text(DaemonConfig& config, std::string_view text, std::string_view origin,
                       std::vector<std::string>& errors);

// Applies the command line's settings over a config file's: a list setting given there
// (bootstrap, swarm/swarm-file, repo) replaces the file's list instead of adding to it.
void apply_cli_settings(DaemonConfig& config, const std::vector<std::pair<std::string, std::string>>& settings,
                        std::vector<std::string>& errors);

// The refresh period used: records live 60 minutes on annex-swarm nodes but 10 minutes on
// other OpenDHT nodes, so a node that may store on the public network refreshes sooner.
std::chrono::seconds effective_refresh(const DaemonConfig& config);

// Shared by the 'name = value' files (the config, the swarm rules, the stores' dotfile).
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}
template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}
// Each non-blank line of `text` with its comment ('#' on) cut, trimmed: its number, and
// its name and value around the first '=' (no '=': has_value is false, name is the line).
struct SettingLine {
  std::size_t number = 0;
  std::string_view name, value;
  bool has_value = false;
};
void for_each_setting_line(std::string_view text, const std::function<void(const SettingLine&)>& fn);

// "30s", "8m", "1h", "2d" or a count of seconds.
inline Result<std::chrono::seconds> parse_duration(std::string_view text) {
  text = trim(text);
  if (text.empty()) return Error{"empty duration"};
  std::int64_t scale = 1;
  char unit = text.back();
  if (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') {
    scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
    text.remove_suffix(1);
  }
  auto n = parse_number<std::int64_t>(text);
  if (!n || *n <= 0) return Error{"not a positive duration (e.g. 30s, 8m, 1h)"};
  return std::chrono::seconds(*n * scale);
}
// "0", "500K", "25M", "1G" (bytes; K = 1000).
Result<double> parse_rate(std::string_view text);

}  // namespace annexswarm
