#pragma once
// `annex-swarm connect TARGET [SERVICE]` (issue 18): a byte stream to a service another
// member's owner exposes (its sshd, say), for ssh's ProxyCommand. This node finds the
// target (an annex repository UUID as `discover` does, a node id, or a config alias),
// dials it the usual way (LAN, public or mapped address, or a relay circuit; TLS end to
// end, membership proved), asks for the service on that link (OPEN), and once the far side
// says yes, joins the link to the control connection the request came on (transfer/tunnel.hpp).
#include <asio/io_context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/control_api.hpp"
#include "node/member_address.hpp"
#include "node/swarm_directory.hpp"
#include "transfer/peer_dialer.hpp"
#include "transfer/tunnel.hpp"

namespace annexswarm {

class ConnectService {
public:
  struct Settings {
    SelfAddress self;
    std::map<std::string, std::string> aliases;  // alias.NAME = UUID or node id
    std::chrono::milliseconds idle{600000};       // a tunnel with no byte either way
  };
  ConnectService(asio::io_context& io, SwarmDirectory& directory, PeerDialer& dialer, Settings settings);
  ~ConnectService();

  void connect(const ConnectRequest& request, ConnectAnswer answer);
  void stop();  // ends every tunnel
  void set_aliases(std::map<std::string, std::string> aliases) { settings_.aliases = std::move(aliases); }
  std::size_t open() const;

private:
  struct Attempt;
  void try_next(std::shared_ptr<Attempt> attempt);
  void opened(std::shared_ptr<Attempt> attempt, std::shared_ptr<PeerLink> link, const std::string& via);

  asio::io_context& io_;
  SwarmDirectory& directory_;
  PeerDialer& dialer_;
  Settings settings_;
  std::vector<std::weak_ptr<Tunnel>> tunnels_;
  bool stopping_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
