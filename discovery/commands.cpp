#include "discovery/commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "discovery/control_client.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/records.hpp"

namespace annexswarm::cli {
using json = nlohmann::json;
namespace {

constexpr int kFound = 0;
constexpr int kNotFound = 1;
constexpr int kError = 2;

// Sends one request; on any failure prints one line and returns nullopt.
std::optional<json> ask(const LookupOptions& options, const json& request) {
  auto client = ControlClient::connect(options.state_dir);
  if (!client) {
    std::cerr << "annex-swarm: " << client.error() << "\n";
    return std::nullopt;
  }
  auto reply = client->request(request);
  if (!reply) {
    std::cerr << "annex-swarm: " << reply.error() << "\n";
    return std::nullopt;
  }
  if (!reply->value("ok", false)) {
    std::cerr << "annex-swarm: " << reply->value("error", std::string("request failed")) << "\n";
    return std::nullopt;
  }
  return *reply;
}

std::string endpoint_text(const json& e) {
  std::string host = e.value("host", "");
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(e.value("port", 0));
}

std::string apply_format(const std::string& format, const json& node, const json& e) {
  std::string out;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '\\' && i + 1 < format.size()) {
      char c = format[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
      continue;
    }
    if (format[i] != '{') {
      out += format[i];
      continue;
    }
    auto close = format.find('}', i);
    if (close == std::string::npos) {
      out += format.substr(i);
      break;
    }
    std::string field = format.substr(i + 1, close - i - 1);
    if (field == "host") out += e.value("host", "");
    else if (field == "port") out += std::to_string(e.value("port", 0));
    else if (field == "kind") out += e.value("kind", "");
    else if (field == "node") out += node.value("node", "");
    else if (field == "swarm") out += node.value("swarm", "");
    else out += "{" + field + "}";
    i = close;
  }
  return out;
}

}  // namespace

int whereis(const LookupOptions& options, const std::string& key_text) {
  auto key = AnnexKey::parse(key_text);
  if (!key) {
    std::cerr << "annex-swarm: " << key.error() << "\n";
    return kError;
  }
  auto reply = ask(options, {{"op", "whereis"}, {"key", key->str()}});
  if (!reply) return kError;
  const auto& providers = (*reply)["providers"];
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
  } else {
    for (const auto& p : providers)
      std::cout << p.value("node", "") << " " << p.value("repo", "") << " swarm=" << p.value("swarm", "")
                << (p.contains("size") ? " size=" + std::to_string(p["size"].get<std::uint64_t>()) : "")
                << "\n";
    for (const auto& sh : reply->value("shares", json::array()))
      std::cout << "store " << sh.value("store", "") << " erasure-coded " << sh.value("shares", "") << ": "
                << sh.value("live", 0) << " of " << sh.value("n", 0) << " shares live"
                << (sh.value("claimed", 0) ? ", " + std::to_string(sh.value("claimed", 0)) + " more said held" : "")
                << "\n";
    if (providers.empty() && reply->value("shares", json::array()).empty())
      std::cerr << "annex-swarm: no node announces " << key->str() << "\n";
  }
  return providers.empty() && reply->value("shares", json::array()).empty() ? kNotFound : kFound;
}

int discover(const LookupOptions& options, const std::string& uuid) {
  if (!is_annex_uuid(uuid)) {
    std::cerr << "annex-swarm: '" << uuid << "' is not a git-annex repository uuid\n";
    return kError;
  }
  auto reply = ask(options, {{"op", "discover"}, {"uuid", uuid}});
  if (!reply) return kError;
  const auto& nodes = (*reply)["nodes"];
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
  } else if (!options.format.empty()) {
    for (const auto& n : nodes)
      for (const auto& e : n["endpoints"]) std::cout << apply_format(options.format, n, e) << "\n";
  } else {
    for (const auto& n : nodes) {
      std::cout << n.value("node", "") << " swarm=" << n.value("swarm", "");
      if (!n.value("contact", false)) std::cout << " (no contact record yet)";
      for (const auto& e : n["endpoints"]) std::cout << " " << e.value("kind", "") << "=" << endpoint_text(e);
      std::cout << "\n";
    }
    if (nodes.empty()) std::cerr << "annex-swarm: no node serves repository " << uuid << "\n";
  }
  return nodes.empty() ? kNotFound : kFound;
}

int health(const LookupOptions& options, std::chrono::seconds window) {
  auto reply = ask(options, {{"op", "status"}});
  if (!reply) return kNotFound;  // not running, or not answering: said on stderr
  const auto& d = (*reply)["dht"];
  auto alone = d.value("disconnected_for", std::int64_t{0});
  if (alone <= window.count() || d.value("first_node", false)) {
    std::cout << "healthy: DHT " << d.value("status", "") << ", " << d.value("good_nodes", 0) << " good nodes"
              << (d.value("status", "") != "connected" && d.value("first_node", false) ? " (first node: alone until others join)" : "")
              << "\n";
    return kFound;
  }
  std::cout << "unhealthy: no DHT peer for " << alone << " s (more than " << window.count()
            << " s); is the bootstrap node reachable from here?\n";
  return kNotFound;
}

int status(const LookupOptions& options) {
  auto reply = ask(options, {{"op", "status"}});
  if (!reply) return kError;
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
    return kFound;
  }
  const auto& r = *reply;
  const auto& d = r["dht"];
  std::cout << "node      " << r.value("node", "") << "\n"
            << "version   " << r.value("version", "") << "\n"
            << "state dir " << r.value("state_dir", "") << "\n"
            << "port      " << r.value("port", 0) << " (UDP)\n"
            << "dht       " << d.value("status", "") << ", " << d.value("good_nodes", 0) << " good nodes, "
            << d.value("dubious_nodes", 0) << " dubious\n";
  for (const auto& s : r["swarms"])
    std::cout << "swarm     " << s.value("id", "") << (s.value("public", false) ? " (public)" : "")
              << " (for git-annex remotes: swarmid=" << s.value("swarmid", "") << ")\n";
  for (const auto& repo : r["repos"]) {
    std::cout << "repo      " << repo.value("path", "") << " uuid " << repo.value("uuid", "") << ", "
              << repo.value("keys", 0) << " keys present\n";
    for (const auto& s : repo["swarms"])
      std::cout << "          swarm " << s.value("swarm", "") << ": " << s.value("announced", 0) << " of "
                << s.value("keys", 0) << " announced\n";
  }
  const auto& a = r["announce"];
  std::cout << "announce  " << a.value("puts_ok", 0) << " puts ok, " << a.value("puts_failed", 0)
            << " failed, " << a.value("in_flight", 0) << " in flight\n";
  if (r.contains("repairs") && r["repairs"].is_object()) {
    const auto& rp = r["repairs"];
    auto every = rp.value("interval_seconds", std::int64_t{0});
    std::cout << "repairs   ";
    if (every <= 0) std::cout << "off (repair-interval 0)\n";
    else
      std::cout << "erasure-coded keys held here checked every " << every << " s: " << rp.value("sweeps", 0)
                << " sweeps, " << rp.value("keys_checked", 0) << " keys checked, " << rp.value("repaired", 0)
                << " repaired, " << rp.value("failed", 0) << " failed\n";
    // Shares per erasure-coded key, as the last check found them (short ones first).
    auto keys = rp.value("keys", json::array());
    if (!keys.empty())
      std::cout << "shares    " << rp.value("keys_whole", 0) << " of " << rp.value("keys_known", 0)
                << " erasure-coded keys kept here have every share live\n";
    std::size_t shown = 0;
    for (const auto& k : keys) {
      if (shown++ == 10) {
        std::cout << "          ... (annex-swarm status --json lists up to " << keys.size() << ")\n";
        break;
      }
      std::cout << "          " << k.value("key", "") << ": " << k.value("live", 0) << "/" << k.value("shares", 0)
                << " live";
      if (k.contains("problem")) std::cout << " (" << k.value("problem", "") << ")";
      std::cout << "\n";
    }
  }
  if (r.contains("replication") && r["replication"].is_object()) {
    const auto& rp = r["replication"];
    for (const auto& st : rp.value("stores", json::array())) {
      std::cout << "replicas  store " << st.value("store", "") << ", " << st.value("copies", 0) << " copies: "
                << st.value("held", 0) << " keys held here, " << st.value("below_target", 0) << " below target, "
                << st.value("fetching", 0) << " being fetched, " << st.value("wanted_missing", 0)
                << " wanted and missing";
      auto lost = st.value("lost", json::array());
      if (!lost.empty()) std::cout << ", " << lost.size() << " keeper(s) lost";
      std::cout << "\n";
    }
    if (!rp.value("in_hours", true)) std::cout << "          outside this node's hours: replication waits\n";
  }
  if (r.contains("rules") && r["rules"].is_object()) {
    const auto rules = r["rules"];
    const auto refused = rules.value("refused", json::object());
    std::uint64_t refusals = 0;
    for (const auto& [why, n] : refused.items()) refusals += n.get<std::uint64_t>();
    auto version = rules.value("version", std::uint64_t{0});
    std::cout << "rules     " << (version ? "version " + std::to_string(version) + " signed by " + rules.value("signer", "")
                                          : std::string("none adopted"))
              << "; " << refusals << " refused ('annex-swarm rules show')\n";
  }
  if (r.contains("limits") && r["limits"].is_object()) {
    const auto& l = r["limits"];
    auto rate = [](double bytes) { return bytes > 0 ? std::to_string(static_cast<std::uint64_t>(bytes)) + " B/s" : std::string("none"); };
    std::cout << "limits    storage " << (l["storage"].is_number() ? std::to_string(l["storage"].get<std::uint64_t>()) + " B"
                                                                   : std::string("none"))
              << " (stores hold " << l.value("stores_used", std::uint64_t{0}) << " B), upload "
              << rate(l.value("upload_rate", 0.0)) << ", download " << rate(l.value("download_rate", 0.0));
    if (l["hours"].is_string())
      std::cout << ", replication " << l["hours"].get<std::string>() << (l.value("in_hours", true) ? " (now)" : " (not now)");
    std::cout << "\n          from the config and " << l.value("file", "") << "\n";
    if (l.contains("problem")) std::cout << "          not applied: " << l.value("problem", "") << "\n";
  }
  const auto& ig = r["ignored_values"];
  std::cout << "ignored   " << ig.value("unsigned", 0) << " unsigned, " << ig.value("undecryptable", 0)
            << " undecryptable, " << ig.value("malformed", 0) << " malformed, " << ig.value("forged", 0)
            << " forged, " << ig.value("expired", 0) << " expired DHT values\n";
  if (r.contains("nat") && r["nat"].is_object()) {
    const auto& n = r["nat"];
    std::cout << "nat       " << n.value("method", "") << ": " << n.value("state", "");
    if (n.value("in_use", "none") != "none")
      std::cout << " via " << n.value("in_use", "") << ", external address " << n.value("external_address", "");
    std::cout << "\n";
    for (const auto& m : n.value("mappings", json::array()))
      std::cout << "          " << m.value("protocol", "") << " " << m.value("external_port", 0) << " -> "
                << m.value("internal_port", 0) << ", lease " << m.value("lease_seconds", 0) << " s\n";
    if (n.contains("renew_in_seconds"))
      std::cout << "          renewed in " << n.value("renew_in_seconds", 0) << " s"
                << (n.contains("lease_expires_in_seconds")
                        ? ", lease ends in " + std::to_string(n.value("lease_expires_in_seconds", 0)) + " s"
                        : std::string())
                << "\n";
    if (n.contains("error")) std::cout << "          " << n.value("error", "") << "\n";
    if (n.contains("reachability"))
      std::cout << "reachable " << n["reachability"].value("summary", "") << "\n";
  }
  if (r.contains("relay") && r["relay"].is_object()) {
    const auto& rl = r["relay"];
    std::cout << "relay     " << rl.value("mode", "") << ": ";
    if (rl.value("offered", false))
      std::cout << "offered, " << rl.value("reservations_served", json::array()).size() << " reservations served, "
                << rl.value("circuits_open", 0) << " circuits open (" << rl.value("circuits_opened", 0) << " in all, "
                << rl.value("circuits_refused", 0) << " refused, " << rl.value("circuits_cut", 0) << " cut), "
                << rl.value("bytes_relayed", 0) << " bytes relayed\n";
    else
      std::cout << "not offered\n";
    for (const auto& h : rl.value("reservations_held", json::array()))
      std::cout << "          reservation on " << h.value("relay", "").substr(0, 8) << " at " << h.value("endpoint", "")
                << (h.value("confirmed", false) ? "" : " (asking)") << ", " << h.value("circuits", 0) << " circuits\n";
    if (rl.contains("note")) std::cout << "          " << rl.value("note", "") << "\n";
  }
  return kFound;
}

int peers(const LookupOptions& options) {
  auto reply = ask(options, {{"op", "peers"}});
  if (!reply) return kError;
  const auto& list = (*reply)["peers"];
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
  } else {
    for (const auto& p : list) {
      std::cout << p.value("node", "") << " swarm=" << p.value("swarm", "") << (p.value("self", false) ? " (this node)" : "");
      for (const auto& e : p["endpoints"]) std::cout << " " << e.value("kind", "") << "=" << endpoint_text(e);
      std::cout << "\n";
    }
  }
  return list.empty() ? kNotFound : kFound;
}

int trash(const LookupOptions& options) {
  auto reply = ask(options, {{"op", "trash"}});
  if (!reply) return kError;
  const auto list = reply->value("trash", json::array());
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
  } else {
    for (const auto& t : list)
      std::cout << t.value("key", "") << " store=" << t.value("store", "") << " " << t.value("bytes", 0)
                << " bytes, purged in " << t.value("purged_in_seconds", 0) << " s\n";
  }
  return list.empty() ? kNotFound : kFound;
}

int restore(const LookupOptions& options, const std::string& key, const std::string& store) {
  auto reply = ask(options, {{"op", "restore"}, {"key", key}, {"store", store}});
  if (!reply) return kError;
  if (!options.json) std::cerr << "annex-swarm: " << key << " is back in swarm store " << store << "\n";
  else std::cout << reply->dump(2) << "\n";
  return kFound;
}

int repair(const LookupOptions& options, const std::string& key, const std::string& store) {
  auto reply = ask(options, {{"op", "repair"}, {"key", key}, {"store", store}});
  if (!reply) return kError;
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
  } else {
    std::cout << key << ": " << reply->value("live_before", 0) << " shares live before, " << reply->value("live_after", 0)
              << " after (" << reply->value("shares", std::string()) << ")\n";
    // Held in locals: items() of a temporary would dangle.
    const auto placed = reply->value("placed", nlohmann::json::object());
    const auto failed = reply->value("failed", nlohmann::json::object());
    for (const auto& [share, node] : placed.items()) std::cout << "  " << share << " -> " << node.get<std::string>() << "\n";
    for (const auto& [share, why] : failed.items()) std::cout << "  " << share << " not placed: " << why.get<std::string>() << "\n";
  }
  return reply->value("failed", nlohmann::json::object()).empty() ? kFound : kError;
}

int repair_all(const LookupOptions& options, const std::string& store) {
  auto reply = ask(options, {{"op", "repair"}, {"all", true}, {"store", store}});
  if (!reply) return kError;
  const auto failed = reply->value("failed", nlohmann::json::object());
  if (options.json) {
    std::cout << reply->dump(2) << "\n";
  } else {
    std::cout << store << ": " << reply->value("keys", 0) << " keys, " << reply->value("whole", 0) << " with every share live, "
              << reply->value("repaired", 0) << " repaired, " << failed.size() << " not (fully) repaired\n";
    for (const auto& [key, why] : failed.items()) std::cout << "  " << key << ": " << why.get<std::string>() << "\n";
  }
  return failed.empty() ? kFound : kError;
}

int get(const LookupOptions& options, const std::string& key_text, const std::string& to, bool unverified) {
  auto key = AnnexKey::parse(key_text);
  if (!key) {
    std::cerr << "annex-swarm: " << key.error() << "\n";
    return kError;
  }
  std::error_code ec;
  auto destination = std::filesystem::absolute(to, ec);
  auto client = ControlClient::connect(options.state_dir);
  if (!client) {
    std::cerr << "annex-swarm: " << client.error() << "\n";
    return kError;
  }
  bool tty = ::isatty(2) && !options.json;
  auto started = std::chrono::steady_clock::now();
  std::optional<std::uint64_t> first_bytes;  // resumed bytes do not count toward the rate
  auto reply = client->request(
      {{"op", "get"}, {"key", key->str()}, {"to", destination.string()}, {"unverified", unverified}},
      [&](const json& event) {
        if (options.json) return;
        auto bytes = event.value("bytes", std::uint64_t{0}), total = event.value("total", std::uint64_t{0});
        if (!first_bytes) {
          first_bytes = bytes;
          started = std::chrono::steady_clock::now();
        }
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        double rate = elapsed > 0.2 ? static_cast<double>(bytes - *first_bytes) / elapsed : 0;
        double pct = total ? 100.0 * static_cast<double>(bytes) / static_cast<double>(total) : 100.0;
        // snprintf, not fmt: this binary starts for every key and loads no more than libc.
        char buf[160];
        std::string eta = "--:--";
        if (rate > 0 && total >= bytes) {
          auto left = static_cast<long>(static_cast<double>(total - bytes) / rate + 0.5);
          std::snprintf(buf, sizeof buf, "%ld:%02ld", left / 60, left % 60);
          eta = buf;
        }
        std::snprintf(buf, sizeof buf, "%5.1f%%  %.1f / %.1f MiB  %.1f MB/s  %d peer(s)  ETA %s", pct, bytes / 1048576.0,
                      total / 1048576.0, rate / 1e6, event.value("peers", 0), eta.c_str());
        std::string line = buf;
        // A stall is shown as a stall, and a busy peer as something being waited for.
        if (event.contains("stalled_seconds")) {
          std::snprintf(buf, sizeof buf, "%5.1f%%  stalled: no data for %d s  %d peer(s)", pct,
                        event.value("stalled_seconds", 0), event.value("peers", 0));
          line = buf;
        }
        if (event.contains("waiting"))
          line += "  waiting for " + std::to_string(event.value("waiting", 0)) +
                  " busy peer(s): " + event.value("waiting_why", std::string());
        if (tty) std::cerr << "\r" << line << "\x1b[K" << std::flush;
        else std::cerr << line << "\n";
      });
  if (tty) std::cerr << "\n";
  if (!reply) {
    std::cerr << "annex-swarm: " << reply.error() << "\n";
    return kError;
  }
  if (options.json) std::cout << reply->dump(2) << "\n";
  const json dropped = reply->value("dropped", json::object());
  for (const auto& [node, why] : dropped.items())
    std::cerr << "annex-swarm: peer " << node << " dropped: " << why.get<std::string>() << "\n";
  if (!reply->value("ok", false)) {
    std::cerr << "annex-swarm: " << reply->value("error", std::string("download failed")) << "\n";
    return reply->value("code", std::string()) == "not-found" ? kNotFound : kError;
  }
  if (!options.json) {
    auto bytes = reply->value("bytes_fetched", std::uint64_t{0});
    auto seconds = reply->value("seconds", 0.0);
    std::cerr << "annex-swarm: got " << key->str() << " (" << bytes << " bytes in " << seconds << " s from "
              << (*reply)["bytes_from"].size() << " peer(s))\n";
    const json paths = reply->value("paths", json::object());  // items() must not outlive it
    for (const auto& [node, path] : paths.items())
      if (path.is_string()) std::cerr << "annex-swarm:   " << node << " via " << path.get<std::string>() << "\n";
  }
  return kFound;
}

namespace {

void print_rules(const json& r) {
  auto version = r.value("version", std::uint64_t{0});
  if (version == 0) {
    std::cout << "no swarm rules adopted";
    auto admins = r.value("config_admins", json::array());
    if (admins.empty()) std::cout << " (no rules-admin in this node's config: it adopts none)\n";
    else std::cout << " (the first version must be signed by " << admins.size() << " admin(s) of the config)\n";
  } else {
    std::cout << "version   " << version << ", signed by " << r.value("signer", "") << ", expires "
              << (r["expires"].is_string() ? r["expires"].get<std::string>() : std::string("never")) << "\n";
    // Copies held in locals: a range-for over items() of a temporary would dangle.
    const auto admins = r.value("admins", json::array());
    const auto groups = r.value("groups", json::object());
    const auto stores = r.value("stores", json::object());
    for (const auto& a : admins) std::cout << "admin     " << a.get<std::string>() << "\n";
    for (const auto& [name, nodes] : groups.items())
      std::cout << "group     " << name << ": " << nodes.size() << " node(s)\n";
    for (const auto& [uuid, s] : stores.items()) {
      std::cout << "store     " << uuid;
      if (s.contains("copies")) std::cout << ": " << s["copies"].get<unsigned>() << " copies";
      if (s.contains("keep_on")) {
        std::cout << " on";
        for (const auto& g : s["keep_on"]) std::cout << " " << g.get<std::string>();
      }
      if (s.contains("grace_seconds")) std::cout << ", grace " << s["grace_seconds"].get<std::int64_t>() << " s";
      std::cout << "\n";
    }
    const auto me = r.value("this_node", json::object());
    const auto my_groups = me.value("groups", json::array());
    std::cout << "this node " << me.value("node", "") << ": in groups";
    for (const auto& g : my_groups) std::cout << " " << g.get<std::string>();
    if (my_groups.empty()) std::cout << " (none)";
    std::cout << "; keeps copies of " << me.value("keeps_copies_of", json::array()).size() << " store(s)\n";
  }
  const auto f = r.value("refused", json::object());
  std::cout << "refused   " << f.value("unsigned", 0) << " unsigned, " << f.value("bad_signature", 0) << " bad signature, "
            << f.value("not_an_admin", 0) << " not by an admin, " << f.value("rollback", 0) << " not newer, "
            << f.value("expired", 0) << " expired, " << f.value("malformed", 0) << " malformed\n";
}

}  // namespace

int rules_push(const LookupOptions& options, const std::string& document, const std::string& public_keys) {
  auto reply = ask(options, {{"op", "rules-push"}, {"document", document}, {"public_keys", public_keys}});
  if (!reply) return kError;
  if (options.json) std::cout << reply->dump() << "\n";
  bool adopted = reply->value("adopted", false);
  auto why = reply->value("why", std::string());
  if (adopted) {
    if (!options.json) std::cout << "annex-swarm: version " << reply->value("version", 0) << " adopted; members pick it up within a minute\n";
    return kFound;
  }
  if (why == "already held") {
    if (!options.json) std::cout << "annex-swarm: this node holds that version already\n";
    return kFound;
  }
  std::cerr << "annex-swarm: refused: " << why << "\n";
  return kNotFound;
}

int rules_show(const LookupOptions& options) {
  auto reply = ask(options, {{"op", "rules-show"}});
  if (!reply) return kError;
  if (options.json) std::cout << reply->dump() << "\n";
  else print_rules(*reply);
  return kFound;
}

namespace {
// Copies stdin to the socket and what the far side sends to stdout until the far side is
// done. Toward us the node sends records (transfer/tunnel.hpp): a 4-byte big-endian length
// and the bytes; length 0 is the far side's fin, 0xffffffff and a record of the reason a
// broken tunnel. End of file on stdin becomes a half-close of the socket (ssh relies on
// it); the far side's fin ends the copy once stdout has it all, as a proxy for ssh should.
// Returns 0 only when the far side finished cleanly. Every descriptor is polled only when
// there is something to do with it.
int pump(int sock, std::string ahead) {
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
  constexpr std::uint32_t kBroke = 0xffffffffu;
  constexpr std::size_t kMaxReason = 4096;
  constexpr std::size_t kBuffer = 512 * 1024;
  // Both directions move through fixed buffers by offsets: no byte is moved twice.
  std::vector<char> up(kBuffer), down(kBuffer);
  std::size_t up_begin = 0, up_end = 0;      // read from stdin, not yet sent
  std::size_t down_begin = 0, down_end = 0;  // from the node, not yet parsed or written
  std::size_t payload_left = 0;              // of the record being written to stdout
  if (ahead.size() > kBuffer) return 1;      // cannot be: the reply is read in small pieces
  std::copy(ahead.begin(), ahead.end(), down.begin());
  down_end = ahead.size();
  bool stdin_open = true, sock_open = true, sent_eof = false, far_done = false;
  std::optional<std::string> broke;  // the node said the tunnel broke, and why
  auto failed = [](const char* what) {
    std::cerr << "annex-swarm: connect: the tunnel broke: " << what << ": " << std::strerror(errno) << "\n";
    return 1;
  };
  auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(down[down_begin + i])); };
  auto word = [&](std::size_t i) { return byte(i) << 24 | byte(i + 1) << 16 | byte(i + 2) << 8 | byte(i + 3); };
  // Takes the next record's header when the last record's payload is all written; false
  // on something that is not a record.
  auto parse = [&] {
    if (payload_left > 0 || far_done || broke || down_end - down_begin < 4) return true;
    std::uint32_t length = word(0);
    if (length == 0) {
      far_done = true;
      down_begin += 4;
    } else if (length == kBroke) {
      if (down_end - down_begin < 8) return true;
      std::uint32_t n = word(4);
      if (n > kMaxReason) return false;
      if (down_end - down_begin < 8 + n) return true;
      broke = std::string(down.data() + down_begin + 8, n);
      down_begin += 8 + n;
    } else {
      payload_left = length;
      down_begin += 4;
    }
    return true;
  };
  while (!broke && !far_done) {
    if (!parse()) {
      std::cerr << "annex-swarm: connect: the node sent something that is not a tunnel record\n";
      return 1;
    }
    if (broke || far_done) break;
    if (down_begin == down_end) down_begin = down_end = 0;
    if (down_end == kBuffer && down_begin >= kBuffer / 2) {  // room again, moving at most half
      std::memmove(down.data(), down.data() + down_begin, down_end - down_begin);
      down_end -= down_begin;
      down_begin = 0;
    }
    bool writable = payload_left > 0 && down_end > down_begin;
    if (!sock_open && !writable) {
      std::cerr << "annex-swarm: connect: the node closed the tunnel without an end (did it stop?)\n";
      return 1;
    }
    bool read_stdin = stdin_open && up_begin == up_end;
    bool read_sock = sock_open && down_end < kBuffer;
    bool send_sock = up_begin < up_end;
    pollfd fds[3] = {{read_stdin ? 0 : -1, POLLIN, 0},
                     {(read_sock || send_sock) ? sock : -1,
                      static_cast<short>((read_sock ? POLLIN : 0) | (send_sock ? POLLOUT : 0)), 0},
                     {writable ? 1 : -1, POLLOUT, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return failed("poll");
    }
    if (read_stdin && fds[0].revents) {
      auto n = ::read(0, up.data(), up.size());
      if (n > 0) {
        up_begin = 0;
        up_end = static_cast<std::size_t>(n);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
      }
    }
    if (send_sock && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      auto n = ::send(sock, up.data() + up_begin, up_end - up_begin, MSG_NOSIGNAL);
      if (n < 0 && errno != EINTR && errno != EAGAIN) return failed("sending");
      if (n > 0) up_begin += static_cast<std::size_t>(n);
    }
    if (!stdin_open && up_begin == up_end && !sent_eof) {
      ::shutdown(sock, SHUT_WR);
      sent_eof = true;
    }
    if (read_sock && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      auto n = ::read(sock, down.data() + down_end, kBuffer - down_end);
      if (n > 0) down_end += static_cast<std::size_t>(n);
      else if (n == 0) sock_open = false;
      else if (errno != EINTR && errno != EAGAIN) return failed("receiving");
    }
    if (writable && fds[2].revents) {
      auto n = ::write(1, down.data() + down_begin, std::min(payload_left, down_end - down_begin));
      if (n < 0 && errno != EINTR && errno != EAGAIN) return 1;  // nobody reads our output any more
      if (n > 0) {
        down_begin += static_cast<std::size_t>(n);
        payload_left -= static_cast<std::size_t>(n);
      }
    }
  }
  if (broke) {
    std::cerr << "annex-swarm: connect: the tunnel broke: " << *broke << "\n";
    return 1;
  }
  return 0;
}
}  // namespace

int connect(const LookupOptions& options, const std::string& target, const std::string& service) {
  auto client = ControlClient::connect(options.state_dir);
  if (!client) {
    std::cerr << "annex-swarm: " << client.error() << "\n";
    return 1;
  }
  client->set_timeout(std::chrono::seconds(90));  // finding the node may take a DHT lookup or two
  auto reply = client->request({{"op", "connect"}, {"target", target}, {"service", service}});
  if (!reply) {
    std::cerr << "annex-swarm: connect: " << reply.error() << "\n";
    return 1;
  }
  if (!reply->value("ok", false)) {
    std::cerr << "annex-swarm: connect: " << reply->value("error", std::string("failed")) << "\n";
    return 1;
  }
  if (reply->value("framing", std::string()) != "records") {
    std::cerr << "annex-swarm: connect: the running node is of another version; restart it\n";
    return 1;
  }
  std::string ahead;
  int sock = client->release(ahead);
  int status = pump(sock, std::move(ahead));
  ::close(sock);
  return status;
}

}  // namespace annexswarm::cli
