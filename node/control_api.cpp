#include "node/control_api.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "protocol/ip_address.hpp"
#include "protocol/peer_frames.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string_view to_string(ControlErrorCode code) {
  switch (code) {
    case ControlErrorCode::BadRequest: return "bad-request";
    case ControlErrorCode::BadKey: return "bad-key";
    case ControlErrorCode::BadUuid: return "bad-uuid";
    case ControlErrorCode::NoSwarm: return "no-swarm";
    case ControlErrorCode::NotFound: return "not-found";
    case ControlErrorCode::Unverifiable: return "unverifiable";
    case ControlErrorCode::NotAStore: return "not-a-store";
    case ControlErrorCode::Failed: return "failed";
    case ControlErrorCode::UnknownOp: return "unknown-op";
    case ControlErrorCode::Internal: return "internal";
  }
  return "internal";
}

namespace {

using Parsed = std::variant<ControlRequest, ControlError>;

ControlError bad(ControlErrorCode code, std::string message) { return {code, std::move(message)}; }

std::optional<std::string> text(const json& request, const char* field) {
  if (!request.contains(field) || !request[field].is_string()) return std::nullopt;
  return request[field].get<std::string>();
}

// The "key" field as an annex key, or why not (`missing` when absent).
std::variant<AnnexKey, ControlError> key_field(const json& request, const std::string& missing) {
  auto t = text(request, "key");
  if (!t) return bad(ControlErrorCode::BadRequest, missing);
  auto key = AnnexKey::parse(*t);
  if (!key) return bad(ControlErrorCode::BadKey, key.error());
  return *key;
}

std::variant<std::string, ControlError> uuid_field(const json& request, const char* field) {
  auto value = text(request, field).value_or("");
  if (!is_annex_uuid(value))
    return bad(ControlErrorCode::BadUuid, std::string("the request needs a \"") + field + "\" that is an annex uuid");
  return value;
}

template <class T>
bool failed(const std::variant<T, ControlError>& v) { return std::holds_alternative<ControlError>(v); }
template <class T>
ControlError error_of(const std::variant<T, ControlError>& v) { return std::get<ControlError>(v); }

// "shares": "K+M" names an erasure-coded store; absent: whole copies.
std::variant<std::optional<erasure::ShareShape>, ControlError> shares_field(const json& request) {
  auto t = text(request, "shares");
  if (!t || t->empty()) return std::optional<erasure::ShareShape>();
  auto shape = erasure::ShareShape::parse(*t);
  if (!shape) return ControlError{ControlErrorCode::BadRequest, shape.error()};
  return std::optional<erasure::ShareShape>(*shape);
}

Parsed parse_get(const json& request) {
  if (!text(request, "key") || !text(request, "to"))
    return bad(ControlErrorCode::BadRequest, "get needs a \"key\" and a \"to\" path");
  auto key = key_field(request, "");
  if (failed(key)) return error_of(key);
  fs::path to = *text(request, "to");
  if (to.is_relative()) return bad(ControlErrorCode::BadRequest, "\"to\" must be an absolute path");
  GetRequest get{std::get<AnnexKey>(key), to, request.value("unverified", false), text(request, "repo").value_or(""), {}};
  if (!get.repo.empty() && !is_annex_uuid(get.repo))
    return bad(ControlErrorCode::BadUuid, "'" + get.repo + "' is not an annex uuid");
  auto shares = shares_field(request);
  if (auto* e = std::get_if<ControlError>(&shares)) return *e;
  get.shares = std::get<0>(shares);
  if (get.shares && get.repo.empty()) return bad(ControlErrorCode::BadRequest, "a get from shares needs the store as \"repo\"");
  get.in_order = request.value("in_order", false) && !get.shares;
  return get;
}

Parsed parse_keyed(const std::string& op, const json& request) {
  auto key = key_field(request, "the request needs a \"key\"");
  if (failed(key)) return error_of(key);
  auto k = std::get<AnnexKey>(key);
  auto scope = uuid_field(request, op == "present" ? "repo" : "store");
  if (failed(scope)) return error_of(scope);
  auto uuid = std::get<std::string>(scope);
  auto shares_or = shares_field(request);
  if (auto* e = std::get_if<ControlError>(&shares_or)) return *e;
  auto shares = std::get<0>(shares_or);
  if (op == "present") {
    PresentRequest present{k, uuid, {}, {}, shares};
    for (const auto& c : request.value("challenges", json::array())) {
      if (!c.is_object()) return bad(ControlErrorCode::BadRequest, "a challenge is an object");
      auto nonce = from_hex(c.value("nonce", std::string()));
      auto mac = from_hex(c.value("mac", std::string()));
      PossessionChallenge challenge;
      try {
        challenge.offsets = c.value("offsets", std::vector<std::uint64_t>{});
        challenge.lengths = c.value("lengths", std::vector<std::uint64_t>{});
      } catch (const json::exception&) {
        return bad(ControlErrorCode::BadRequest, "challenge offsets and lengths are lists of numbers");
      }
      if (!nonce || nonce->size() != 32 || !mac || mac->size() != 32 ||
          peer::check(peer::Prove{0, k.str(), "", *nonce, challenge.offsets, challenge.lengths}))
        return bad(ControlErrorCode::BadRequest, "a challenge needs a 32-byte nonce and mac and valid ranges");
      challenge.nonce = std::move(*nonce);
      challenge.mac = std::move(*mac);
      present.challenges.push_back(std::move(challenge));
      if (present.challenges.size() > 64) return bad(ControlErrorCode::BadRequest, "at most 64 challenges");
    }
    for (const auto& n : request.value("pinned", json::array()))
      if (n.is_string() && NodeId::from_hex(n.get<std::string>())) present.pinned.push_back(n.get<std::string>());
    return present;
  }
  if (op == "remove") return RemoveRequest{k, uuid, shares};
  if (op == "restore") return RestoreRequest{k, uuid};
  if (op == "repair") return RepairRequest{k, uuid};
  auto file = text(request, "file");
  if (!file || fs::path(*file).is_relative())
    return bad(ControlErrorCode::BadRequest, "store needs an absolute \"file\" path");
  return StoreRequest{k, uuid, *file, shares};
}

}  // namespace

std::variant<ControlRequest, ControlError> parse_control_request(const json& request) {
  const std::string op = request["op"];
  if (op == "status") return StatusRequest{};
  if (op == "peers") return PeersRequest{};
  if (op == "whereis") {
    auto key = key_field(request, "whereis needs a \"key\"");
    if (failed(key)) return error_of(key);
    return WhereisRequest{std::get<AnnexKey>(key)};
  }
  if (op == "get") return parse_get(request);
  if (op == "discover") {
    auto uuid = text(request, "uuid");
    if (!uuid) return bad(ControlErrorCode::BadRequest, "discover needs a \"uuid\"");
    if (!is_annex_uuid(*uuid)) return bad(ControlErrorCode::BadUuid, "'" + *uuid + "' is not a git-annex repository uuid");
    return DiscoverRequest{*uuid};
  }
  if (op == "repair" && request.contains("all") && !request.contains("key")) {
    if (!request["all"].is_boolean() || !request["all"].get<bool>())
      return bad(ControlErrorCode::BadRequest, "repair needs a \"key\", or \"all\": true");
    auto scope = uuid_field(request, "store");
    if (failed(scope)) return error_of(scope);
    return RepairAllRequest{std::get<std::string>(scope)};
  }
  if (op == "store" || op == "present" || op == "remove" || op == "restore" || op == "repair")
    return parse_keyed(op, request);
  if (op == "trash") return TrashRequest{};
  if (op == "connect") {
    auto target = text(request, "target");
    if (!target || target->empty()) return bad(ControlErrorCode::BadRequest, "connect needs a \"target\"");
    ConnectRequest connect{*target, "ssh"};
    if (auto service = text(request, "service")) connect.service = *service;
    if (connect.service.empty() || connect.service.size() > peer::kMaxServiceName)
      return bad(ControlErrorCode::BadRequest, "a service is named by 1-32 characters");
    return connect;
  }
  if (op == "rules-show") return RulesShowRequest{};
  if (op == "rules-push") {
    auto document = text(request, "document");
    auto keys = request.contains("public_keys") ? text(request, "public_keys") : std::optional<std::string>("");
    if (!document || document->empty() || document->size() > kMaxRulesDocument)
      return bad(ControlErrorCode::BadRequest, "rules-push needs a \"document\" of at most " +
                                                   std::to_string(kMaxRulesDocument) + " bytes");
    if (!keys || keys->size() > kMaxRulesKeys)
      return bad(ControlErrorCode::BadRequest,
                 "\"public_keys\" is armored text of at most " + std::to_string(kMaxRulesKeys) + " bytes");
    return RulesPushRequest{*document, *keys};
  }
  return bad(ControlErrorCode::UnknownOp, "unknown request '" + op + "'");
}

json to_json(const Endpoint& e) {
  json out = {{"kind", to_string(e.kind)}, {"host", e.host}, {"port", e.port}};
  if (e.kind == EndpointKind::Relay) out["via"] = e.via;
  return out;
}

namespace {

json to_json(const std::vector<Endpoint>& endpoints) {
  json out = json::array();
  for (const auto& e : endpoints) out.push_back(to_json(e));
  return out;
}

json to_json(const Progress& p) {
  json out = {{"event", "progress"}, {"bytes", p.bytes}};
  if (p.total) out["total"] = *p.total;
  if (p.prefix) out["prefix"] = *p.prefix;
  if (p.peers) out["peers"] = *p.peers;
  if (p.stalled_seconds >= 5) out["stalled_seconds"] = static_cast<std::int64_t>(p.stalled_seconds);
  if (p.waiting) {
    out["waiting"] = p.waiting;
    out["waiting_why"] = p.waiting_why;
  }
  return out;
}

json to_json(const WhereisReply& r) {
  json providers = json::array();
  for (const auto& p : r.providers) {
    json entry = {{"node", p.node.hex()}, {"repo", p.repo}, {"swarm", p.swarm}};
    if (r.size) entry["size"] = *r.size;
    providers.push_back(std::move(entry));
  }
  json shares = json::array();
  for (const auto& sh : r.shares)
    shares.push_back({{"store", sh.store}, {"shares", sh.shape}, {"live", sh.live}, {"claimed", sh.claimed}, {"n", sh.n}});
  return {{"key", r.key}, {"providers", std::move(providers)}, {"shares", std::move(shares)}};
}

json to_json(const GetReply& r) {
  json out = {{"key", r.key}, {"bytes_from", r.bytes_from}, {"dropped", r.dropped},
              {"bytes_fetched", r.bytes_fetched}, {"bytes_resumed", r.bytes_resumed}, {"seconds", r.seconds}};
  if (r.local) {
    out["local"] = true;
  } else {
    out["paths"] = r.paths;
    out["redialled"] = r.redialled;
  }
  if (r.error) {
    out["ok"] = false;
    out["code"] = to_string(ControlErrorCode::Failed);
    out["error"] = *r.error;
  }
  return out;
}

json to_json(const DiscoverReply& r) {
  json nodes = json::array();
  for (const auto& n : r.nodes)
    nodes.push_back({{"node", n.node.hex()}, {"swarm", n.swarm}, {"contact", n.contact}, {"endpoints", to_json(n.endpoints)}});
  return {{"uuid", r.uuid}, {"nodes", std::move(nodes)}};
}

json to_json(const PeersReply& r) {
  json peers = json::array();
  for (const auto& n : r.peers)
    peers.push_back({{"node", n.node.hex()}, {"swarm", n.swarm}, {"self", n.self}, {"endpoints", to_json(n.endpoints)},
                     {"store_offer", n.store_offer}});
  return {{"peers", std::move(peers)}};
}

json to_json(const StoreReply& r) { return {{"ok", true}, {"key", r.key}, {"bytes", r.bytes}}; }

json to_json(const PresentReply& r) {
  json out = {{"present", r.present}, {"confirmed_by", r.confirmed_by}, {"unreachable", r.unreachable},
              {"unproven", r.unproven}};
  if (r.unknown) out["unknown"] = true;
  return out;
}

json to_json(const RemoveReply& r) {
  return {{"ok", r.failed.empty()}, {"removed_from", r.removed_from}, {"failed", r.failed}};
}

json to_json(const TrashReply& r) {
  json entries = json::array();
  for (const auto& e : r.entries)
    entries.push_back({{"store", e.store}, {"key", e.key}, {"bytes", e.bytes}, {"removed_unix", e.removed_unix},
                       {"purged_in_seconds", e.purged_in_seconds}});
  return {{"trash", std::move(entries)}};
}

json to_json(const RestoreReply& r) { return {{"ok", true}, {"key", r.key}, {"store", r.store}}; }
json to_json(const RepairAllReply& r) {
  return {{"ok", true},          {"complete", r.failed.empty()}, {"store", r.store}, {"keys", r.keys},
          {"whole", r.whole},    {"repaired", r.repaired},       {"failed", r.failed}};
}
json to_json(const RepairReply& r) {
  return {{"ok", true}, {"complete", r.failed.empty()}, {"key", r.key}, {"shares", r.shape}, {"shares_total", r.shares},
          {"live_before", r.live_before},
          {"live_after", r.live_after}, {"placed", r.placed}, {"failed", r.failed}};
}

json replication_json(const ReplicaStatus& r) {
  json stores = json::array();
  for (const auto& st : r.stores)
    stores.push_back({{"store", st.uuid},
                      {"copies", st.copies},
                      {"grace_seconds", st.grace_seconds},
                      {"held", st.held},
                      {"below_target", st.below_target},
                      {"fetching", st.fetching},
                      {"wanted_missing", st.wanted_missing},
                      {"lost", st.lost},
                      {"swept_at", st.swept_at}});
  return {{"interval_seconds", r.interval_seconds},
          {"sweeps", r.sweeps},
          {"asked", r.asked},
          {"taken", r.taken},
          {"take_failures", r.take_failures},
          {"trimmed", r.trimmed},
          {"in_hours", r.in_hours},
          {"stores", std::move(stores)}};
}

// The erasure-coded keys kept here, as their last check found them: the short ones first,
// at most kStatusKeys of them (the counts cover all).
json repairs_json(const RepairSweeps& r) {
  constexpr std::size_t kStatusKeys = 100;
  std::vector<const std::pair<const std::string, RepairSweeps::KeyShares>*> order;
  std::size_t whole = 0;
  for (const auto& entry : r.keys) {
    order.push_back(&entry);
    whole += entry.second.problem.empty() && entry.second.n > 0 && entry.second.live >= entry.second.n;
  }
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    auto short_a = a->second.live < a->second.n || !a->second.problem.empty();
    auto short_b = b->second.live < b->second.n || !b->second.problem.empty();
    return short_a > short_b;
  });
  json keys = json::array();
  for (std::size_t i = 0; i < order.size() && i < kStatusKeys; ++i) {
    const auto& [key, k] = *order[i];
    json one = {{"key", key}, {"store", k.store}, {"live", k.live}, {"shares", k.n}, {"checked_at", k.checked_at}};
    if (!k.problem.empty()) one["problem"] = k.problem;
    keys.push_back(std::move(one));
  }
  return {{"interval_seconds", r.interval_seconds},
          {"sweeps", r.sweeps},
          {"keys_checked", r.keys_checked},
          {"repaired", r.repaired},
          {"failed", r.failed},
          {"keys_known", r.keys.size()},
          {"keys_whole", whole},
          {"keys", std::move(keys)}};
}

std::string day_text(std::int64_t unix_seconds) {
  std::chrono::sys_days day{std::chrono::floor<std::chrono::days>(std::chrono::sys_seconds{std::chrono::seconds(unix_seconds)})};
  std::chrono::year_month_day ymd{day};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

json to_json(const RulesReply& r) {
  const auto& f = r.refused;
  json out = {{"ok", true},
              {"config_admins", r.config_admins},
              {"refused", {{"unsigned", f.unsigned_text},
                           {"bad_signature", f.bad_signature},
                           {"not_an_admin", f.not_an_admin},
                           {"rollback", f.rollback},
                           {"expired", f.expired},
                           {"malformed", f.malformed}}}};
  if (r.adopted) {
    out["adopted"] = *r.adopted;
    out["why"] = r.why;
  }
  if (!r.rules) {
    out["version"] = 0;
    return out;
  }
  const auto& rules = *r.rules;
  out["version"] = rules.version;
  out["signer"] = r.signer;
  out["expires"] = rules.expires ? json(day_text(*rules.expires)) : json(nullptr);
  out["admins"] = rules.admins;
  json groups = json::object(), mine = json::array();
  for (const auto& [name, nodes] : rules.groups) {
    json ids = json::array();
    for (const auto& n : nodes) ids.push_back(n.hex());
    groups[name] = std::move(ids);
    if (std::find(nodes.begin(), nodes.end(), r.self) != nodes.end()) mine.push_back(name);
  }
  out["groups"] = std::move(groups);
  json stores = json::object(), keeps = json::array();
  for (const auto& [uuid, s] : rules.stores) {
    json one = json::object();
    if (s.copies) one["copies"] = *s.copies;
    if (!s.keep_on.empty()) one["keep_on"] = s.keep_on;
    if (s.grace) one["grace_seconds"] = s.grace->count();
    stores[uuid] = std::move(one);
    for (const auto& g : s.keep_on)
      if (std::find(mine.begin(), mine.end(), g) != mine.end()) {
        keeps.push_back(uuid);
        break;
      }
  }
  out["stores"] = std::move(stores);
  out["this_node"] = {{"node", r.self.hex()}, {"groups", std::move(mine)}, {"keeps_copies_of", std::move(keeps)}};
  return out;
}

json limits_json(const StatusReply::Limits& l) {
  json out = {{"file", l.file},
              {"storage", l.storage ? json(*l.storage) : json(nullptr)},
              {"stores_used", l.stores_used},
              {"upload_rate", l.upload_rate},
              {"download_rate", l.download_rate},
              {"hours", l.hours ? json(l.hours->text()) : json(nullptr)},
              {"in_hours", l.in_hours}};
  if (!l.problem.empty()) out["problem"] = l.problem;
  return out;
}

json nat_json(const StatusReply& s) {
  using Clock = std::chrono::steady_clock;
  auto now = Clock::now();
  json out = {{"method", std::string(to_string(s.nat_method))}};
  if (const auto* mapper = s.reachability.mapper) {
    const auto& m = mapper->status();
    json mappings = json::array();
    for (const auto& p : m.mappings)
      mappings.push_back({{"protocol", std::string(to_string(p.protocol))},
                          {"internal_port", p.internal_port},
                          {"external_port", p.external_port},
                          {"lease_seconds", p.lease.count()}});
    out["in_use"] = std::string(to_string(m.in_use));
    out["state"] = m.state;
    out["gateway"] = m.gateway;
    out["external_address"] = m.external_address;
    out["mappings"] = std::move(mappings);
    if (!m.mappings.empty()) {
      out["renew_in_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(m.renew_at - now).count();
      if (m.expires_at != Clock::time_point{})
        out["lease_expires_in_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(m.expires_at - now).count();
    }
    if (!m.error.empty()) out["error"] = m.error;
  } else {
    out["state"] = s.nat_applies ? "off" : "not used (loopback only)";
  }
  json failed = json::array();
  for (const auto& p : s.reachability.probes)
    if (!p.ok && !p.endpoint.host.empty()) failed.push_back({{"endpoint", to_json(p.endpoint)}, {"why", p.why}});
  json reach = {{"confirmed", to_json(s.confirmed)},
                {"failed", std::move(failed)},
                {"summary", s.reachability.summary},
                {"observed_address", s.reachability.observed},
                {"checking", s.reachability.checking}};
  if (s.reachability.checked_ago) reach["checked_seconds_ago"] = s.reachability.checked_ago->count();
  if (s.first_confirmed_after) reach["first_confirmed_after_seconds"] = *s.first_confirmed_after;
  out["reachability"] = std::move(reach);
  return out;
}

json relay_json(const RelayManager::Status& r) {
  json out = {{"mode", r.mode == RelayMode::On ? "on" : r.mode == RelayMode::Off ? "off" : "auto"},
              {"offered", r.server != nullptr}};
  if (r.server) {
    json held = json::array();
    for (const auto& s : r.served)
      held.push_back({{"node", s.node.hex()}, {"circuits_open", s.circuits_open}, {"expires_in_seconds", s.expires_in.count()}});
    const auto& st = r.server->stats();
    out["reservations_served"] = std::move(held);
    out["circuits_open"] = r.server->circuits_open();
    out["circuits_opened"] = st.circuits_opened;
    out["circuits_refused"] = st.circuits_refused;
    out["circuits_cut"] = st.circuits_cut;
    out["reservations_refused"] = st.reservations_refused;
    out["joins_refused"] = st.joins_refused;
    out["bytes_relayed"] = st.bytes_relayed;
  }
  json mine = json::array();
  for (const auto& h : r.held)
    mine.push_back({{"relay", h.relay.hex()},
                    {"endpoint", host_port(h.endpoint.address().to_string(), h.endpoint.port())},
                    {"confirmed", h.confirmed},
                    {"circuits", h.circuits}});
  out["reservations_held"] = std::move(mine);
  if (!r.note.empty()) out["note"] = r.note;
  return out;
}

}  // namespace

json to_json(const StatusReply& s) {
  json swarms = json::array();
  for (const auto& sw : s.swarms)
    swarms.push_back({{"id", sw.id}, {"swarmid", sw.public_id}, {"public", sw.is_public}});
  json repos = json::array();
  for (const auto& r : s.announce.repos) {
    json per_swarm = json::array();
    for (std::size_t si = 0; si < r.per_swarm.size() && si < s.swarms.size(); ++si)
      per_swarm.push_back({{"swarm", s.swarms[si].id}, {"announced", r.per_swarm[si].first}, {"keys", r.per_swarm[si].second}});
    repos.push_back({{"path", r.path.string()}, {"uuid", r.uuid}, {"scanned", r.scanned}, {"keys", r.keys},
                     {"invalid_names", r.invalid_names}, {"last_scan_seconds", r.last_scan_seconds},
                     {"swarms", std::move(per_swarm)}});
  }
  json peers_served;
  if (s.peers_served)
    peers_served = {{"links_accepted", s.peers_served->links_accepted},
                    {"links_refused", s.peers_served->links_refused},
                    {"links_open", s.peers_served->links_open},
                    {"links_open_peak", s.peers_served->links_open_peak},
                    {"unauthenticated", s.peers_served->unauthenticated},
                    {"waiting_for_handshake", s.peers_served->parked},
                    {"waited_for_handshake", s.peers_served->parked_total},
                    {"waited_too_long", s.peers_served->parked_timeouts},
                    {"handshake_timeouts", s.peers_served->handshake_timeouts},
                    {"busy_refusals", s.peers_served->busy_refusals},
                    {"idle_evictions", s.peers_served->idle_evictions},
                    {"accept_errors", s.peers_served->accept_errors},
                    {"manifests_hashed", s.peers_served->manifests_hashed},
                    {"tunnels_open", s.peers_served->tunnels_open},
                    {"tunnels_refused", s.peers_served->tunnels_refused},
                    {"bytes_served", s.peers_served->bytes_served},
                    {"frames_paced", s.peers_served->frames_paced}};
  return {{"node", s.node.hex()},
          {"version", ANNEX_SWARM_VERSION},
          {"state_dir", s.state_dir},
          {"port", s.port},
          {"swarms", std::move(swarms)},
          {"dht", {{"status", s.dht.status},
                   {"good_nodes", s.dht.good_nodes},
                   {"dubious_nodes", s.dht.dubious_nodes},
                   {"searches", s.dht.searches},
                   {"public_addresses", s.dht.public_addresses},
                   {"stored_values", s.dht.stored_values},
                   {"stored_bytes", s.dht.stored_bytes},
                   {"disconnected_for", std::llround(s.dht.disconnected_for)},
                   {"first_node", s.dht.first_node}}},
          {"announce", {{"rate", s.announce.rate},
                        {"refresh_seconds", s.announce.refresh_seconds},
                        {"in_flight", s.announce.in_flight},
                        {"puts_ok", s.announce.puts_ok},
                        {"puts_failed", s.announce.puts_failed}}},
          {"repos", std::move(repos)},
          {"ignored_values", {{"unsigned", s.refused.unsigned_values},
                              {"undecryptable", s.refused.undecryptable},
                              {"malformed", s.refused.malformed},
                              {"forged", s.refused.forged},
                              {"expired", s.refused.expired}}},
          {"peers_served", std::move(peers_served)},
          {"downloads", s.downloads},
          {"links", {{"open", s.links.open}, {"dials", s.links.dials}, {"reused", s.links.reused}}},
          {"endpoints", to_json(s.endpoints)},
          {"nat", nat_json(s)},
          {"relay", relay_json(s.relay)},
          {"repairs", repairs_json(s.repairs)},
          {"replication", replication_json(s.replication)},
          {"rules", to_json(s.rules)},
          {"limits", limits_json(s.limits)}};
}

void ControlApi::handle(const json& request, ControlResponder responder) {
  auto parsed = parse_control_request(request);
  if (auto* e = std::get_if<ControlError>(&parsed)) return responder.fail(to_string(e->code), e->message);
  // Every reply (or error) goes out through here, so JSON stays in this file.
  auto answer = [responder](const auto& outcome) {
    std::visit(
        [&](const auto& reply) {
          if constexpr (std::is_same_v<std::decay_t<decltype(reply)>, ControlError>)
            responder.fail(to_string(reply.code), reply.message);
          else
            responder.reply(to_json(reply));
        },
        outcome);
  };
  auto progress = [responder](const Progress& p) { responder.event(to_json(p)); };
  std::visit(
      [&](const auto& r) {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, StatusRequest>) responder.reply(to_json(handlers_.status()));
        else if constexpr (std::is_same_v<R, WhereisRequest>) handlers_.whereis(r, answer);
        else if constexpr (std::is_same_v<R, GetRequest>)
          handlers_.get(r, progress, answer, [responder](std::function<void()> fn) { responder.on_gone(std::move(fn)); });
        else if constexpr (std::is_same_v<R, DiscoverRequest>) handlers_.discover(r, answer);
        else if constexpr (std::is_same_v<R, PeersRequest>) handlers_.peers(answer);
        else if constexpr (std::is_same_v<R, StoreRequest>) handlers_.store(r, progress, answer);
        else if constexpr (std::is_same_v<R, PresentRequest>) handlers_.present(r, answer);
        else if constexpr (std::is_same_v<R, RemoveRequest>) handlers_.remove(r, answer);
        else if constexpr (std::is_same_v<R, TrashRequest>) handlers_.trash(answer);
        else if constexpr (std::is_same_v<R, RestoreRequest>) handlers_.restore(r, answer);
        else if constexpr (std::is_same_v<R, RepairRequest>) handlers_.repair(r, progress, answer);
        else if constexpr (std::is_same_v<R, RepairAllRequest>) handlers_.repair_all(r, progress, answer);
        else if constexpr (std::is_same_v<R, RulesPushRequest>) handlers_.rules_push(r, answer);
        else if constexpr (std::is_same_v<R, RulesShowRequest>) responder.reply(to_json(handlers_.rules_show()));
        else if constexpr (std::is_same_v<R, ConnectRequest>) {
          if (!handlers_.connect) return responder.fail(to_string(ControlErrorCode::UnknownOp), "this node does not connect");
          handlers_.connect(r, [responder](Outcome<ConnectReply> out, ControlResponder::Taker take) {
            if (auto* e = std::get_if<ControlError>(&out)) return responder.fail(to_string(e->code), e->message);
            const auto& reply = std::get<ConnectReply>(out);
            responder.hand_over({{"node", reply.node.hex()}, {"via", reply.via}, {"framing", "records"}}, std::move(take));
          });
        }
      },
      std::get<ControlRequest>(parsed));
}

}  // namespace annexswarm
