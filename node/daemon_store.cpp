// The daemon's side of git-annex-remote-swarm: swarm stores (store, remove), presence
// checks that ask the holders themselves, and finding the sources of a key.
#include <asio/post.hpp>

#include "node/daemon.hpp"
#include "node/log.hpp"
#include "node/swarm_store.hpp"
#include "transfer/peer_request.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr auto kAskTimeout = std::chrono::seconds(15);

std::optional<AnnexKey> key_of(const json& request, const ControlResponder& responder) {
  if (!request.contains("key") || !request["key"].is_string()) {
    responder.fail("bad-request", "the request needs a \"key\"");
    return std::nullopt;
  }
  auto key = AnnexKey::parse(request["key"].get<std::string>());
  if (!key) {
    responder.fail("bad-key", key.error());
    return std::nullopt;
  }
  return *key;
}

std::optional<std::string> uuid_of(const json& request, const char* field, const ControlResponder& responder) {
  auto value = request.contains(field) && request[field].is_string() ? request[field].get<std::string>() : "";
  if (!is_annex_uuid(value)) {
    responder.fail("bad-uuid", std::string("the request needs a \"") + field + "\" that is an annex uuid");
    return std::nullopt;
  }
  return value;
}
}  // namespace

std::vector<FetchSource> Daemon::to_sources(const std::vector<std::pair<std::size_t, ContactRecord>>& contacts) const {
  std::vector<FetchSource> sources;
  for (const auto& [si, contact] : contacts) {
    FetchSource source{{contact.node, {}}, si};
    for (const auto& e : contact.endpoints) {
      std::error_code ec;
      auto address = asio::ip::make_address(e.host, ec);
      if (ec) continue;
      if (e.kind != EndpointKind::Relay) {
        source.address.endpoints.emplace_back(address, e.port);
        continue;
      }
      auto relay = NodeId::from_hex(e.via);
      if (!relay) continue;
      // This node may be the relay itself: its own address from inside a NAT would need
      // the router to hairpin, so it is reached on loopback.
      asio::ip::tcp::endpoint at(address, e.port);
      if (*relay == node_id_) {
        bool wildcard = config_.listen.empty() || asio::ip::make_address(config_.listen, ec).is_unspecified();
        at = asio::ip::tcp::endpoint(asio::ip::make_address(wildcard ? "127.0.0.1" : config_.listen, ec), peer_port_);
      }
      source.address.relays.push_back({*relay, {at}});
    }
    if (!source.address.endpoints.empty() || !source.address.relays.empty()) sources.push_back(std::move(source));
  }
  return sources;
}

void Daemon::find_sources(const AnnexKey& key, const std::string& only_repo, const std::string& plus_nodes_of,
                          std::function<void(std::vector<FetchSource>)> done) {
  find_providers(key, [this, key, only_repo, plus_nodes_of, done = std::move(done)](std::vector<Provider> found) {
    using Nodes = std::vector<std::pair<std::size_t, NodeId>>;
    auto add = [this](Nodes& nodes, std::size_t si, const NodeId& node) {
      if (node != node_id_ && std::find(nodes.begin(), nodes.end(), std::make_pair(si, node)) == nodes.end())
        nodes.emplace_back(si, node);
    };
    Nodes nodes;
    for (const auto& p : found)
      if (only_repo.empty() || p.repo_uuid == only_repo) add(nodes, p.swarm, p.node);
    auto finish = [this, key, done](Nodes nodes) {
      find_contacts(nodes, [this, key, count = nodes.size(), done](std::vector<std::pair<std::size_t, ContactRecord>> contacts) {
        auto sources = to_sources(contacts);
        log::info("{}: {} node(s) to ask, {} with a usable contact record", key.str(), count, sources.size());
        done(std::move(sources));
      });
    };
    if (plus_nodes_of.empty()) return finish(std::move(nodes));
    find_repo_nodes(plus_nodes_of, [nodes = std::move(nodes), add, finish](Nodes serving) mutable {
      for (const auto& [si, node] : serving) add(nodes, si, node);
      finish(std::move(nodes));
    });
  });
}

void Daemon::copy_local(const AnnexKey& key, const fs::path& from, const fs::path& to, ControlResponder responder) {
  // This node holds the key itself: a verified local copy, no network.
  auto started = std::chrono::steady_clock::now();
  asio::post(disk_, [this, key, from, to, responder, started] {
    auto copied = copy_verified(from, key, to, nullptr);
    asio::post(io_, [this, key, copied, responder, started] {
      if (!copied) return responder.reply({{"ok", false}, {"code", "failed"}, {"error", copied.error()}});
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      responder.reply({{"key", key.str()}, {"bytes_from", {{node_id_.hex(), *copied}}}, {"dropped", json::object()},
                       {"bytes_fetched", *copied}, {"bytes_resumed", 0}, {"seconds", seconds}, {"local", true}});
    });
  });
}

std::optional<std::size_t> Daemon::served_index(std::string_view uuid) const {
  for (std::size_t i = 0; i < repos_.size(); ++i)
    if (repos_[i].repo.uuid == uuid) return i;
  return std::nullopt;
}

Result<bool> Daemon::remove_from_local_store(const AnnexKey& key, std::string_view store) {
  auto index = served_index(store);
  if (!index || !repos_[*index].repo.store) return Error{"no swarm store " + std::string(store) + " on this node"};
  auto removed = remove_from_store(repos_[*index].repo, key);
  if (!removed) return Error{removed.error()};
  if (*removed) {
    log::info("removed {} from swarm store {}", key.str(), std::string(store));
    rescan_soon(*index);
  }
  return true;
}

void Daemon::ask_sources(const std::vector<FetchSource>& sources, const peer::Frame& request,
                         std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done) {
  struct Gather {
    std::size_t pending;
    std::vector<std::pair<std::string, Result<peer::Frame>>> answers;
    std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done;
  };
  if (sources.empty()) return done({});
  auto gather = std::make_shared<Gather>(Gather{sources.size(), {}, std::move(done)});
  for (const auto& source : sources) {
    ask_peer(io_, *dialer_, source.address, swarms_[source.swarm].token, request, kAskTimeout,
             [gather, node = source.address.node.hex()](Result<peer::Frame> answer) {
               gather->answers.emplace_back(node, std::move(answer));
               if (--gather->pending == 0) gather->done(std::move(gather->answers));
             });
  }
}

void Daemon::handle_store(const json& request, ControlResponder responder) {
  auto key = key_of(request, responder);
  if (!key) return;
  auto store = uuid_of(request, "store", responder);
  if (!store) return;
  if (!request.contains("file") || !request["file"].is_string() || fs::path(request["file"].get<std::string>()).is_relative())
    return responder.fail("bad-request", "store needs an absolute \"file\" path");
  fs::path file = request["file"].get<std::string>();
  auto found = served_index(*store);
  if (found && !repos_[*found].repo.store)
    return responder.fail("not-a-store", *store + " is an annex repository this node serves, not a swarm store");
  std::size_t index;
  if (found) {
    index = *found;
  } else {
    ServedRepo served;
    served.repo = swarm_store(config_.state_dir, *store);
    index = add_served(std::move(served));
    log::info("new swarm store {} in {}", *store, repos_[index].repo.path.string());
  }
  auto repo = repos_[index].repo;
  asio::post(disk_, [this, key = *key, file, repo, index, responder] {
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    auto imported = import_into_store(repo, key, file, [this, responder, last](std::uint64_t bytes) {
      auto now = std::chrono::steady_clock::now();
      if (now - *last < std::chrono::milliseconds(200)) return;
      *last = now;
      asio::post(io_, [responder, bytes] { responder.event({{"event", "progress"}, {"bytes", bytes}}); });
    });
    asio::post(io_, [this, key, imported, index, responder] {
      if (!imported) return responder.fail("failed", imported.error());
      log::info("stored {} in swarm store {}", key.str(), repos_[index].repo.uuid);
      rescan_soon(index);
      responder.reply({{"ok", true}, {"key", key.str()}, {"bytes", *imported}});
    });
  });
}

void Daemon::handle_present(const json& request, ControlResponder responder) {
  auto key = key_of(request, responder);
  if (!key) return;
  auto repo = uuid_of(request, "repo", responder);
  if (!repo) return;
  // Only copies in that repository or swarm store count, and only when the node holding
  // it confirms now: a DHT record may be up to an hour old.
  if (locate_object(*key, *repo)) return responder.reply({{"present", true}, {"confirmed_by", {node_id_.hex()}}});
  find_sources(*key, *repo, *repo, [this, key = *key, repo = *repo, responder](std::vector<FetchSource> sources) {
    ask_sources(sources, peer::Have{1, {key.str()}, repo}, [responder](auto answers) {
      json confirmed = json::array(), unreachable = json::object();
      for (const auto& [node, answer] : answers) {
        auto* reply = answer ? std::get_if<peer::HaveReply>(&*answer) : nullptr;
        if (reply && reply->sizes.size() == 1 && reply->sizes[0] > 0) confirmed.push_back(node);
        else if (!reply) unreachable[node] = answer ? "unexpected answer" : answer.error();
      }
      bool present = !confirmed.empty();
      json out = {{"present", present}, {"confirmed_by", confirmed}, {"unreachable", unreachable}};
      // Nobody confirmed, but a holder could not be asked: we do not know.
      if (!present && !unreachable.empty()) out["unknown"] = true;
      responder.reply(std::move(out));
    });
  });
}

void Daemon::handle_remove(const json& request, ControlResponder responder) {
  auto key = key_of(request, responder);
  if (!key) return;
  auto store = uuid_of(request, "store", responder);
  if (!store) return;
  if (auto index = served_index(*store)) {
    if (!repos_[*index].repo.store)
      return responder.fail("not-a-store", *store + " is an annex repository; drop from it with git annex drop");
    if (auto r = remove_from_local_store(*key, *store); !r) return responder.fail("failed", r.error());
  }
  // Every other node whose record says its store holds the key removes it too.
  find_sources(*key, *store, "", [this, key = *key, store = *store, responder](std::vector<FetchSource> sources) {
    ask_sources(sources, peer::Remove{1, key.str(), store}, [responder](auto answers) {
      json removed = json::array(), failed = json::object();
      for (const auto& [node, answer] : answers) {
        if (answer && std::holds_alternative<peer::HaveReply>(*answer)) removed.push_back(node);
        else if (!answer) failed[node] = answer.error();
        else if (auto* e = std::get_if<peer::ErrorFrame>(&*answer)) failed[node] = e->message;
      }
      responder.reply({{"ok", failed.empty()}, {"removed_from", removed}, {"failed", failed}});
    });
  });
}

}  // namespace annexswarm
