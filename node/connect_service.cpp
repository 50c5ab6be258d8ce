#include "node/connect_service.hpp"

#include <asio/steady_timer.hpp>

#include "node/log.hpp"

namespace annexswarm {

namespace {
constexpr auto kOpenDeadline = std::chrono::seconds(15);  // for the far side's OPEN reply
}

struct ConnectService::Attempt {
  ConnectRequest request;
  ConnectAnswer answer;
  std::vector<FetchSource> sources;
  std::size_t next = 0;
  std::string failures;  // why each source failed, for the final error
  void failed(const NodeId& node, const std::string& why) {
    failures += (failures.empty() ? "" : "; ") + node_short(node) + ": " + why;
  }
};

ConnectService::ConnectService(asio::io_context& io, SwarmDirectory& directory, PeerDialer& dialer, Settings settings)
    : io_(io), directory_(directory), dialer_(dialer), settings_(std::move(settings)) {}

ConnectService::~ConnectService() { *alive_ = false; }

std::size_t ConnectService::open() const {
  std::size_t n = 0;
  for (const auto& t : tunnels_)
    if (auto tunnel = t.lock(); tunnel && !tunnel->ended()) ++n;
  return n;
}

void ConnectService::stop() {
  stopping_ = true;
  for (auto& t : tunnels_)
    if (auto tunnel = t.lock()) tunnel->close("the node is stopping");
  tunnels_.clear();
}

void ConnectService::connect(const ConnectRequest& request, ConnectAnswer answer) {
  if (directory_.swarms().empty())
    return answer(ControlError{ControlErrorCode::NoSwarm, "this node is in no swarm (start it with --swarm TOKEN)"}, nullptr);
  auto target = request.target;
  if (auto alias = settings_.aliases.find(target); alias != settings_.aliases.end()) target = alias->second;
  auto attempt = std::make_shared<Attempt>();
  attempt->request = request;
  attempt->answer = std::move(answer);
  auto with_nodes = [this, alive = alive_, attempt, target](std::vector<SwarmNode> nodes) {
    if (!*alive) return;
    if (nodes.empty())
      return attempt->answer(ControlError{ControlErrorCode::NotFound, "no node serves repository " + target}, nullptr);
    directory_.contacts(nodes, [this, alive, attempt, target](std::vector<Member> members) {
      if (!*alive) return;
      // Never through the public swarm: tunnels are for a private swarm's members.
      std::erase_if(members, [this](const Member& m) { return directory_.swarms()[m.swarm].is_public(); });
      attempt->sources = dialable(members, settings_.self);
      if (attempt->sources.empty())
        return attempt->answer(ControlError{ControlErrorCode::NotFound, "found no address for " + target +
                                                                            " (no contact record, or none usable)"},
                               nullptr);
      try_next(attempt);
    });
  };
  if (is_annex_uuid(target)) return directory_.repo_nodes(target, with_nodes);
  if (auto id = NodeId::from_hex(target)) {
    if (*id == directory_.self())
      return attempt->answer(ControlError{ControlErrorCode::BadRequest, "that is this node itself"}, nullptr);
    std::vector<SwarmNode> nodes;
    for (std::size_t s = 0; s < directory_.swarms().size(); ++s) nodes.push_back({s, *id});
    return with_nodes(std::move(nodes));
  }
  attempt->answer(ControlError{ControlErrorCode::BadRequest,
                               "'" + request.target + "' is no annex repository UUID, node id, or alias.NAME of the config"},
                  nullptr);
}

void ConnectService::try_next(std::shared_ptr<Attempt> attempt) {
  if (stopping_) return attempt->answer(ControlError{ControlErrorCode::Failed, "the node is stopping"}, nullptr);
  if (attempt->next >= attempt->sources.size())
    return attempt->answer(ControlError{ControlErrorCode::Failed, "could not open '" + attempt->request.service +
                                                                     "' on " + attempt->request.target + ": " +
                                                                     attempt->failures},
                           nullptr);
  const auto source = attempt->sources[attempt->next++];
  const auto& token = directory_.swarms()[source.swarm];
  dialer_.dial(source.address, token, [this, alive = alive_, attempt, source](Result<std::shared_ptr<PeerLink>> link) {
    if (!*alive) return;
    if (!link) {
      attempt->failed(source.address.node, link.error());
      return try_next(attempt);
    }
    auto l = *link;
    // A dedicated link: it carries this one stream, then closes.
    auto answered = std::make_shared<bool>(false);
    auto deadline = std::make_shared<asio::steady_timer>(io_, kOpenDeadline);
    deadline->async_wait([l, answered](const std::error_code& ec) {
      if (!ec && !*answered) l->close();
    });
    l->send(peer::Open{1, attempt->request.service});
    l->receive([this, alive, attempt, source, l, deadline, answered](Result<peer::Frame> frame) {
      *answered = true;
      deadline->cancel();
      if (!*alive) return;
      auto* reply = frame ? std::get_if<peer::OpenReply>(&*frame) : nullptr;
      if (!reply) {
        attempt->failed(source.address.node, frame ? std::string("unexpected answer") : frame.error());
        l->close();
        return try_next(attempt);
      }
      if (!reply->ok) {
        attempt->failed(source.address.node, "refused: " + reply->reason);
        l->close();
        return try_next(attempt);
      }
      opened(attempt, l, l->remote_address());
    });
  });
}

void ConnectService::opened(std::shared_ptr<Attempt> attempt, std::shared_ptr<PeerLink> link, const std::string& via) {
  auto node = link->peer();
  log::info("tunnel to '{}' on node {} open (via {})", attempt->request.service, node.hex(), via);
  attempt->answer(ConnectReply{node, via}, [this, alive = alive_, link, node,
                                           service = attempt->request.service](asio::local::stream_protocol::socket socket,
                                                                               std::string ahead) {
    if (!*alive || stopping_) return link->close();
    // What the client sent right behind its request goes first.
    if (!ahead.empty()) link->send(peer::Stream{Bytes(ahead.begin(), ahead.end()), false});
    auto tunnel = std::make_shared<Tunnel>(io_, link, Tunnel::LocalSocket(std::move(socket)), settings_.idle,
                                           [node, service](std::optional<std::string> error) {
                                             if (error) log::info("tunnel to '{}' on node {} ended: {}", service, node.hex(), *error);
                                             else log::info("tunnel to '{}' on node {} closed", service, node.hex());
                                           },
                                           Tunnel::Framing::Records);
    std::erase_if(tunnels_, [](const std::weak_ptr<Tunnel>& t) { return t.expired(); });
    tunnels_.push_back(tunnel);
    tunnel->start();
  });
}

}  // namespace annexswarm
