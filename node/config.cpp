#include "node/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <fmt/format.h>

#include "node/state_files.hpp"
#include "node/swarm_rules.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {


void for_each_setting_line(std::string_view text, const std::function<void(const SettingLine&)>& fn) {
  std::size_t number = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++number;
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    SettingLine out;
    out.number = number;
    auto eq = line.find('=');
    out.has_value = eq != std::string_view::npos;
    out.name = out.has_value ? trim(line.substr(0, eq)) : line;
    if (out.has_value) out.value = trim(line.substr(eq + 1));
    fn(out);
  }
}

namespace {

std::optional<bool> parse_bool(std::string_view s) {
  if (s == "on" || s == "true" || s == "yes" || s == "1") return true;
  if (s == "off" || s == "false" || s == "no" || s == "0") return false;
  return std::nullopt;
}

bool is_private_or_loopback(std::string_view hostport) {
  auto colon = hostport.rfind(':');
  std::string host(hostport.substr(0, colon));
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    auto ip = ntohl(a4.s_addr);
    return (ip >> 24) == 127 || (ip >> 24) == 10 || (ip >> 20) == 0xac1 ||
           (ip >> 16) == 0xc0a8 || (ip >> 16) == 0xa9fe;
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_LINKLOCAL(&a6) || (a6.s6_addr[0] & 0xfe) == 0xfc;
  return host == "localhost";
}

}  // namespace


Result<double> parse_rate(std::string_view text) {
  text = trim(text);
  if (text.empty()) return Error{"empty rate"};
  double scale = 1;
  switch (text.back()) {
    case 'K': case 'k': scale = 1e3; break;
    case 'M': case 'm': scale = 1e6; break;
    case 'G': case 'g': scale = 1e9; break;
    default: break;
  }
  if (scale != 1) text.remove_suffix(1);
  auto n = parse_number<std::uint64_t>(text);
  if (!n) return Error{"not a rate in bytes per second (e.g. 0, 500K, 25M)"};
  // Kept below 2^63 so that callers may hold it in a 64-bit integer.
  if (static_cast<double>(*n) * scale >= 9e18) return Error{"too large"};
  return static_cast<double>(*n) * scale;
}

const std::vector<SettingDoc>& daemon_settings() {
  static const std::vector<SettingDoc> docs{
      {"state-dir", "DIR", "$ANNEX_SWARM_STATE_DIR, else $XDG_STATE_HOME/annex-swarm (root: /var/lib/annex-swarm)",
       "identity, control socket and announce state live here", false},
      {"store-dir", "DIR", "STATE-DIR/stores",
       "where the swarm stores keep their objects (a disk of their own, say), with the limits dotfile "
       ".annex-swarm at its root", false},
      {"port", "N", "4224", "UDP port of the DHT; 0 picks a free one", false},
      {"peer-port", "N", "the DHT's port number", "TCP port serving peers; 0 picks a free one", false},
      {"listen", "ADDR", "all interfaces", "address to bind, e.g. 127.0.0.1", false},
      {"advertise", "[HOST]:PORT", "none (the interfaces' addresses, the peer port)",
       "where others dial this node when a port forward or a container's published port leads to it "
       "(e.g. 192.168.1.10:5000, or :5000 for the address dial-back finds); LAN and loopback addresses are "
       "published as given, public ones once a dial-back reaches them", true},
      {"bootstrap", "HOST:PORT", std::string_view(kPublicBootstrap),
       "DHT node to join through; 'none' starts a first node", true},
      {"swarm", "TOKEN", "none", "swarm to join ('annex-swarm swarm new' makes a token); prefer swarm-file", true},
      {"swarm-file", "FILE", "none", "file holding swarm tokens, one per line (keeps them out of ps and argv)", true},
      {"repo", "PATH", "none", "git-annex repository to serve and announce", true},
      {"lan-discovery", "on|off", "on", "find nodes on the local network by multicast", false},
      {"announce-rate", "N", "400", "most DHT puts per second when announcing keys", false},
      {"announce-window", "N", "256", "most DHT puts in flight at once", false},
      {"announce-refresh", "DURATION", "auto (50m on a private DHT, 8m on the public one)",
       "how often every record is put again before it expires", false},
      {"poll-interval", "DURATION", "5s", "how often served repositories are checked for changes",
       false},
      {"lookup-timeout", "DURATION", "20s", "longest a DHT lookup may take", false},
      {"max-peers", "N", "64", "most peer links served at once; more are refused", false},
      {"upload-rate", "BYTES/S", "0 (unlimited)", "most bytes per second served to all peers, e.g. 25M", false},
      {"upload-rate-per-peer", "BYTES/S", "0 (unlimited)", "most bytes per second served to one peer", false},
      {"download-rate", "BYTES/S", "0 (unlimited)", "most bytes per second fetched, over all downloads", false},
      {"store-space", "BYTES", "auto (free space less 1 GiB and 5%)",
       "most bytes this node offers the swarm's stores (replicated copies and erasure-coded shares), e.g. 200G; 0 offers none", false},
      {"repair-interval", "DURATION", "6h",
       "how often the erasure-coded keys whose shares this node holds are checked; one below K+M live shares is "
       "rebuilt and placed again by its first live holder (0: never)", false},
      {"replicate-interval", "DURATION", "5m",
       "how often the keys this node holds in stores the swarm rules replicate (store.UUID.copies) are checked: "
       "keepers lacking one are asked to take it, copies beyond the target are trimmed (0: never)", false},
      {"expose.NAME", "IP:PORT", "nothing",
       "a service members may reach through 'annex-swarm connect' (e.g. expose.ssh = 127.0.0.1:22); ssh still "
       "checks who they are", true},
      {"alias.NAME", "UUID|NODEID", "none", "a name for a target of 'annex-swarm connect' (e.g. alias.home = UUID)", true},
      {"rules-admin", "FINGERPRINT", "none",
       "OpenPGP fingerprint of who may sign the first swarm rules this node adopts (gpg --fingerprint); later "
       "versions must be signed by an admin the version held names", true},
      {"storage", "BYTES", "none",
       "most bytes this node's swarm stores may hold, whole copies and shares (with store-space and the stores' "
       ".annex-swarm file: the lower wins); a STORE or share that would pass it is refused", false},
      {"hours", "HH:MM-HH:MM", "all day", "when replication may run, local time (on-demand gets always run)", false},
      {"rules-check", "DURATION", "30s", "how often the swarm rules other members publish are read (a newer "
       "valid version is adopted)", false},
      {"trash-grace", "DURATION", "1d",
       "objects removed from swarm stores stay in the trash this long ('annex-swarm restore' takes one back)", false},
      {"stall-timeout", "DURATION", "30s",
       "a peer asked for data that sends nothing this long is given up on (its chunks go to others)", false},
      {"nat", "auto|upnp|natpmp|none", "auto",
       "map the peer and DHT ports on the home router: UPnP IGD, else NAT-PMP (auto)", false},
      {"nat-lease", "DURATION", "1h", "port mapping lease asked of the router; renewed at half", false},
      {"reachability-check", "DURATION", "30m",
       "how often other nodes are asked to dial this node back (also on every NAT change)", false},
      {"relay", "on|off|auto", "auto",
       "relay circuits for members nobody can dial; auto: once this node is confirmed reachable", false},
      {"relay-reservations", "N", "2", "relays to hold a reservation on while this node cannot be dialled", false},
      {"relay-max-reservations", "N", "64", "most members this relay holds reservations for", false},
      {"relay-max-circuits", "N", "8", "most circuits open at once to one reserved member", false},
      {"relay-circuit-bytes", "BYTES", "0 (unlimited)", "a circuit is cut after this many bytes, e.g. 10G", false},
      {"relay-circuit-time", "DURATION", "1h", "a circuit is cut after this long", false},
      {"relay-rate", "BYTES/S", "0 (unlimited)", "most bytes per second relayed, over all circuits", false},
      {"log-level", "debug|info|warn|error", "info", "least important log lines shown", false},
  };
  return docs;
}

void apply_setting(DaemonConfig& c, std::string_view name, std::string_view raw,
                   std::vector<std::string>& errors, std::string_view origin) {
  std::string_view value = trim(raw);
  auto bad = [&](std::string_view why) {
    errors.push_back(fmt::format("{}: {} = '{}': {}", origin, name, value, why));
  };
  if (name == "state-dir") {
    if (value.empty()) return bad("needs a directory");
    c.state_dir = std::filesystem::path(std::string(value));
  } else if (name == "store-dir") {
    if (value.empty()) return bad("needs a directory");
    c.store_dir = std::filesystem::path(std::string(value));
  } else if (name == "port") {
    auto p = parse_number<std::uint32_t>(value);
    if (!p || *p > 65535) return bad("not a port number (0-65535)");
    c.port = static_cast<std::uint16_t>(*p);
  } else if (name == "listen") {
    in6_addr scratch{};
    std::string v(value);
    if (inet_pton(AF_INET, v.c_str(), &scratch) != 1 && inet_pton(AF_INET6, v.c_str(), &scratch) != 1)
      return bad("not an IP address");
    c.listen = v;
  } else if (name == "bootstrap") {
    if (value == "none") {
      c.bootstrap.clear();
      return;
    }
    auto colon = value.rfind(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !parse_number<std::uint16_t>(value.substr(colon + 1)))
      return bad("expected HOST:PORT or 'none'");
    c.bootstrap.emplace_back(value);
  } else if (name == "advertise") {
    auto [host, port_text] = split_host_port(value);
    auto port = parse_number<std::uint16_t>(port_text);
    if (value.find(':') == std::string_view::npos || !port || *port == 0)
      return bad("expected HOST:PORT or :PORT (a port from 1 to 65535)");
    auto scope = host.empty() ? AddressScope::Global : address_scope(host);
    if (scope == AddressScope::Invalid) return bad("'" + host + "' is not an IP address");
    if (scope != AddressScope::Global && scope != AddressScope::Private && scope != AddressScope::Loopback)
      return bad("'" + host + "' is not an address other nodes can dial");
    if (c.advertise.size() >= 4) return bad("at most 4 advertised endpoints");
    c.advertise.push_back({host, *port});
  } else if (name == "swarm") {
    auto token = SwarmToken::parse(value);
    if (!token) return bad(token.error());
    for (const auto& s : c.swarms)
      if (s == *token) return;
    c.swarms.push_back(*token);
  } else if (name == "swarm-file") {
    // Tokens kept out of the command line and the config: one per line, # comments.
    std::ifstream in{std::string(value)};
    if (!in) {
      auto why = errno == EACCES ? read_permission_problem(std::string(value)) : std::string(std::strerror(errno));
      return bad("cannot read " + std::string(value) + ": " + why);
    }
    std::string line;
    int number = 0, found = 0;
    while (std::getline(in, line)) {
      ++number;
      auto text = trim(std::string_view(line).substr(0, line.find('#')));
      if (text.empty()) continue;
      auto token = SwarmToken::parse(text);
      if (!token) return bad(std::string(value) + ":" + std::to_string(number) + ": " + token.error());
      ++found;
      if (std::find(c.swarms.begin(), c.swarms.end(), *token) == c.swarms.end()) c.swarms.push_back(*token);
    }
    if (found == 0) return bad(std::string(value) + " holds no swarm token");
  } else if (name == "repo") {
    if (value.empty()) return bad("needs a path");
    c.repos.emplace_back(std::string(value));
    c.repo_origins.emplace_back(origin);
  } else if (name == "storage") {
    auto r = parse_rate(value);
    if (!r) return bad(r.error());
    c.storage = static_cast<std::uint64_t>(*r);
  } else if (name == "hours") {
    auto h = parse_hours(value);
    if (!h) return bad(h.error());
    c.hours = *h;
  } else if (name == "rules-check") {
    auto d = parse_duration(value);
    if (!d) return bad(d.error());
    c.rules_check = *d;
  } else if (name == "rules-admin") {
    auto fpr = normalize_fingerprint(value);
    if (!fpr) return bad(fpr.error());
    if (std::find(c.rules_admins.begin(), c.rules_admins.end(), *fpr) == c.rules_admins.end())
      c.rules_admins.push_back(*fpr);
  } else if (name == "lan-discovery") {
    auto b = parse_bool(value);
    if (!b) return bad("expected on or off");
    c.lan_discovery = *b;
  } else if (name == "announce-rate") {
    auto r = parse_number<std::uint32_t>(value);
    if (!r || *r == 0) return bad("expected a positive number of puts per second");
    c.announce_rate = *r;
  } else if (name == "announce-window") {
    auto r = parse_number<std::uint32_t>(value);
    if (!r || *r == 0 || *r > 65536) return bad("expected 1-65536");
    c.announce_window = *r;
  } else if (name == "repair-interval") {
    if (trim(value) == "0") {
      c.repair_interval = std::chrono::seconds(0);
      return;
    }
    auto d = parse_duration(value);
    if (!d) return bad(d.error() + " (or 0)");
    c.repair_interval = *d;
  } else if (name == "replicate-interval") {
    if (trim(value) == "0") {
      c.replicate_interval = std::chrono::seconds(0);
      return;
    }
    auto d = parse_duration(value);
    if (!d) return bad(d.error() + " (or 0)");
    c.replicate_interval = *d;
  } else if (name == "trash-grace") {
    auto d = parse_duration(value);
    if (!d) return bad(d.error());
    c.trash_grace = *d;
  } else if (name == "stall-timeout") {
    auto d = parse_duration(value);
    if (!d) return bad(d.error());
    if (*d < std::chrono::seconds(2) || *d > std::chrono::hours(1)) return bad("must be between 2s and 1h");
    c.stall_timeout = *d;
  } else if (name == "announce-refresh" || name == "poll-interval" || name == "lookup-timeout") {
    if (name == "announce-refresh" && value == "auto") {
      c.announce_refresh.reset();
      return;
    }
    auto d = parse_duration(value);
    if (!d) return bad(d.error());
    if (name == "announce-refresh") {
      if (*d < std::chrono::minutes(1) || *d > std::chrono::minutes(55))
        return bad("must be between 1m and 55m (records live 60 minutes)");
      c.announce_refresh = *d;
    } else if (name == "poll-interval") {
      c.poll_interval = *d;
    } else {
      c.lookup_timeout = *d;
    }
  } else if (name == "peer-port") {
    auto p = parse_number<std::uint32_t>(value);
    if (!p || *p > 65535) return bad("not a port number (0-65535)");
    c.peer_port = static_cast<std::uint16_t>(*p);
  } else if (name == "max-peers") {
    auto n = parse_number<std::uint32_t>(value);
    if (!n || *n == 0 || *n > 4096) return bad("expected a number from 1 to 4096");
    c.max_peers = *n;
  } else if (name == "upload-rate" || name == "upload-rate-per-peer" || name == "download-rate") {
    auto r = parse_rate(value);
    if (!r) return bad(r.error());
    (name == "upload-rate" ? c.upload_rate : name == "download-rate" ? c.download_rate : c.upload_rate_per_peer) = *r;
  } else if (name == "nat") {
    auto m = nat::nat_method_from_string(value);
    if (!m) return bad("expected auto, upnp, natpmp or none");
    c.nat = *m;
  } else if (name == "nat-lease" || name == "reachability-check") {
    auto d = parse_duration(value);
    if (!d) return bad(d.error());
    if (name == "nat-lease") {
      if (*d < std::chrono::seconds(10) || *d > std::chrono::hours(24)) return bad("must be between 10s and 24h");
      c.nat_lease = *d;
    } else {
      if (*d < std::chrono::seconds(10)) return bad("must be at least 10s");
      c.reachability_check = *d;
    }
  } else if (name == "relay") {
    if (value == "on") c.relay = DaemonConfig::RelayMode::On;
    else if (value == "off") c.relay = DaemonConfig::RelayMode::Off;
    else if (value == "auto") c.relay = DaemonConfig::RelayMode::Auto;
    else return bad("expected on, off or auto");
  } else if (name == "relay-reservations" || name == "relay-max-reservations" || name == "relay-max-circuits") {
    auto n = parse_number<std::uint32_t>(value);
    if (!n || *n > 4096 || (*n == 0 && name != "relay-reservations")) return bad("expected a number from 1 to 4096");
    (name == "relay-reservations" ? c.relay_reservations
     : name == "relay-max-reservations" ? c.relay_max_reservations : c.relay_max_circuits) = *n;
  } else if (name == "store-space") {
    if (value == "auto") {
      c.store_space.reset();
    } else {
      auto r = parse_rate(value);
      if (!r) return bad(r.error() + " (or auto)");
      c.store_space = static_cast<std::uint64_t>(*r);
    }
  } else if (name == "relay-circuit-bytes" || name == "relay-rate") {
    auto r = parse_rate(value);
    if (!r) return bad(r.error());
    if (name == "relay-rate") c.relay_rate = *r;
    else c.relay_circuit_bytes = static_cast<std::uint64_t>(*r);
  } else if (name == "relay-circuit-time") {
    auto d = parse_duration(value);
    if (!d) return bad(d.error());
    if (d->count() < 1) return bad("must be at least 1s");
    c.relay_circuit_time = *d;
  } else if (name.starts_with("expose.") || name.starts_with("alias.")) {
    bool expose = name.starts_with("expose.");
    auto what = name.substr(name.find('.') + 1);
    bool name_ok = !what.empty() && what.size() <= 32 &&
                   std::all_of(what.begin(), what.end(), [](char ch) {
                     return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
                   });
    if (!name_ok) return bad("a name is 1-32 of a-z, 0-9, '-' and '_'");
    if (expose) {
      auto [host, port] = split_host_port(value);
      auto p = parse_number<std::uint32_t>(port);
      if (!is_ip_literal(host) || !p || *p == 0 || *p > 65535)
        return bad("expected the service's IP:PORT, e.g. 127.0.0.1:22");
      c.expose[std::string(what)] = std::string(value);
    } else {
      if (value.empty()) return bad("expected an annex repository UUID or a node id");
      c.aliases[std::string(what)] = std::string(value);
    }
  } else if (name == "log-level") {
    if (!log::parse_level(value, c.log_level)) return bad("expected debug, info, warn or error");
  } else {
    errors.push_back(fmt::format("{}: unknown setting '{}'", origin, name));
  }
}

void apply_cli_settings(DaemonConfig& c, const std::vector<std::pair<std::string, std::string>>& settings,
                        std::vector<std::string>& errors) {
  // A list given on the command line replaces the file's (swarm and swarm-file are one list).
  std::vector<std::string> replaced;
  for (const auto& [name, value] : settings) {
    auto list = name == "swarm-file" ? std::string("swarm") : name;
    if (std::find(replaced.begin(), replaced.end(), list) == replaced.end()) {
      if (list == "bootstrap") c.bootstrap.clear();
      if (list == "swarm") c.swarms.clear();
      if (list == "repo") c.repos.clear(), c.repo_origins.clear();
      if (list == "rules-admin") c.rules_admins.clear();
      if (list == "advertise") c.advertise.clear();
      replaced.push_back(list);
    }
    apply_setting(c, name, value, errors, "--" + name);
  }
}

void apply_config_text(DaemonConfig& c, std::string_view text, std::string_view origin,
                       std::vector<std::string>& errors) {
  bool bootstrap_seen = false;
  for_each_setting_line(text, [&](const SettingLine& line) {
    auto where = fmt::format("{}:{}", origin, line.number);
    if (!line.has_value) {
      errors.push_back(fmt::format("{}: expected 'name = value', got '{}'", where, line.name));
      return;
    }
    // A file's bootstrap list replaces the built-in default rather than adding to it.
    if (line.name == "bootstrap" && !bootstrap_seen) {
      c.bootstrap.clear();
      bootstrap_seen = true;
    }
    apply_setting(c, line.name, line.value, errors, where);
  });
}

std::chrono::seconds effective_refresh(const DaemonConfig& c) {
  if (c.announce_refresh) return *c.announce_refresh;
  for (const auto& b : c.bootstrap)
    if (!is_private_or_loopback(b)) return std::chrono::minutes(8);
  return std::chrono::minutes(50);
}

}  // namespace annexswarm
