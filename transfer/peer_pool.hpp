#pragma once
// One authenticated link per (member, swarm), shared by everything that talks to that
// member: downloads, HAVE and REMOVE, dial-back questions, relay CONNECT and
// reservations. Requests carry ids the channel assigns, so many run at once on one link;
// every frame that comes back goes to the request with its id. An idle link is pinged
// (and closed when the ping goes unanswered) and closed after a while with nothing to
// do; a reservation pins its link open.
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "transfer/peer_dialer.hpp"

namespace annexswarm {

struct PoolLimits {
  std::chrono::milliseconds ping_after{30000};    // no frame for this long: PING
  std::chrono::milliseconds pong_deadline{20000};  // no frame after the PING: the peer is gone
  std::chrono::milliseconds idle_close{120000};   // no request for this long, unpinned: close
  std::size_t max_links = 256;                    // most links held; the idlest goes first
};

class PeerChannel : public std::enable_shared_from_this<PeerChannel> {
public:
  // Every frame answering the request, as it arrives (DATA as a view, valid during the
  // call); an error when the link fails. Return false when the request is answered in
  // full: later frames with its id are then dropped.
  using OnFrame = std::function<bool(Result<peer::FrameView>&)>;

  PeerChannel(asio::io_context& io, std::shared_ptr<PeerLink> link, NodeId node, std::string swarm_id,
              PoolLimits limits);
  ~PeerChannel();

  // Sends `request` with a fresh id (its own id is replaced); returns that id, or 0 when
  // the link is closed (then `on_frame` hears so, from the io_context).
  std::uint32_t request(peer::Frame request, OnFrame on_frame);
  // Stops a request: CANCEL goes out, and its frames still on their way are dropped.
  void cancel(std::uint32_t id);
  // Frames that answer no request (INCOMING from a relay).
  void on_unsolicited(std::function<void(const peer::Frame&)> fn) { unsolicited_ = std::move(fn); }
  // While pinned, the link is not closed for being idle.
  void pin() { ++pins_; }
  void unpin() {
    if (pins_) --pins_;
  }
  void close(const std::string& why);
  bool open() const { return !closed_; }
  const NodeId& node() const { return node_; }
  const std::string& swarm_id() const { return swarm_id_; }
  // Where the link went (kept after it closes: a redial tries that path last).
  const std::string& remote_address() const { return remote_address_; }
  const asio::ip::tcp::endpoint& remote_endpoint() const { return remote_endpoint_; }
  std::size_t requests() const { return handlers_.size(); }
  // Set when the peer closed the link saying it is busy: when to come back.
  std::optional<std::chrono::milliseconds> busy_retry() const { return busy_retry_; }
  std::chrono::steady_clock::time_point last_used() const { return last_used_; }
  void start();

private:
  void receive();
  void dispatch(Result<peer::FrameView> frame);
  void keepalive();

  asio::io_context& io_;
  std::shared_ptr<PeerLink> link_;
  NodeId node_;
  std::string swarm_id_;
  PoolLimits limits_;
  std::string remote_address_;
  asio::ip::tcp::endpoint remote_endpoint_;
  std::map<std::uint32_t, OnFrame> handlers_;
  std::uint32_t next_id_ = 1;
  std::function<void(const peer::Frame&)> unsolicited_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point last_frame_;
  std::chrono::steady_clock::time_point last_used_;
  bool pinged_ = false;
  std::size_t pins_ = 0;
  bool closed_ = false;
  std::string closed_why_;
  std::optional<std::chrono::milliseconds> busy_retry_;
};

struct PoolStats {
  std::uint64_t dials = 0;   // links made
  std::uint64_t reused = 0;  // requests that found a link open
  std::size_t open = 0;
};

class PeerPool {
public:
  using ChannelFn = std::function<void(Result<std::shared_ptr<PeerChannel>>)>;

  PeerPool(asio::io_context& io, std::shared_ptr<PeerDialer> dialer, PoolLimits limits = {});
  ~PeerPool();

  // The member's link: an open one, or one dialled now (callers asking at once share one
  // dial). A peer address that accepts any member (a bootstrap node) is dialled afresh
  // and then kept under the node id that answered.
  void channel(const PeerAddress& peer, const SwarmToken& swarm, ChannelFn done);
  // One request and its first answer (a reply or an ERROR) within `timeout`.
  void ask(const PeerAddress& peer, const SwarmToken& swarm, peer::Frame request, std::chrono::milliseconds timeout,
           std::function<void(Result<peer::Frame>)> done);
  // Forgets the member's link (closing it), e.g. after it sent bad data.
  void forget(const NodeId& node, const std::string& why);
  void close_all();
  PoolStats stats() const;
  PeerDialer& dialer() { return *dialer_; }

private:
  using Key = std::pair<NodeId, std::string>;  // node, swarm id
  struct Dialling {
    std::vector<ChannelFn> waiters;
  };
  void trim();

  asio::io_context& io_;
  std::shared_ptr<PeerDialer> dialer_;
  PoolLimits limits_;
  std::map<Key, std::shared_ptr<PeerChannel>> channels_;
  std::map<Key, std::shared_ptr<Dialling>> dialling_;
  PoolStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
