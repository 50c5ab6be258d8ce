#include "transfer/peer_pool.hpp"

#include <asio/post.hpp>

namespace annexswarm {
using namespace peer;
using Clock = std::chrono::steady_clock;

namespace {
// The id field of a frame that has one (requests, replies, DATA, ERROR).
template <class F>
std::optional<std::uint32_t> id_of(const F& f) {
  if constexpr (requires { f.id; }) return f.id;
  else return std::nullopt;
}
}  // namespace

PeerChannel::PeerChannel(asio::io_context& io, std::shared_ptr<PeerLink> link, NodeId node, std::string swarm_id,
                         PoolLimits limits)
    : io_(io),
      link_(std::move(link)),
      node_(node),
      swarm_id_(std::move(swarm_id)),
      limits_(limits),
      remote_address_(link_->remote_address()),
      remote_endpoint_(link_->remote_endpoint()),
      timer_(io),
      last_frame_(Clock::now()),
      last_used_(Clock::now()) {}

PeerChannel::~PeerChannel() { link_->close(); }

void PeerChannel::start() {
  receive();
  keepalive();
}

std::uint32_t PeerChannel::request(Frame request, OnFrame on_frame) {
  if (closed_) {
    asio::post(io_, [on_frame = std::move(on_frame), why = closed_why_]() mutable {
      Result<FrameView> r(Error{why});
      on_frame(r);
    });
    return 0;
  }
  auto id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;  // 0 means "no request"
  std::visit(
      [id](auto& f) {
        if constexpr (requires { f.id; }) f.id = id;
      },
      request);
  handlers_[id] = std::move(on_frame);
  last_used_ = Clock::now();
  auto self = shared_from_this();
  link_->send(request, [self, id](Result<bool> sent) {
    if (sent) return;
    // Our own frame could not go out (a bug, or the link died): that request ends here.
    auto it = self->handlers_.find(id);
    if (it == self->handlers_.end()) return;
    auto handler = std::move(it->second);
    self->handlers_.erase(it);
    Result<FrameView> r(Error{sent.error()});
    handler(r);
  });
  return id;
}

void PeerChannel::cancel(std::uint32_t id) {
  if (handlers_.erase(id) && !closed_) link_->send(Cancel{id});
}

void PeerChannel::receive() {
  auto self = shared_from_this();
  link_->receive_view([self](Result<FrameView> frame) {
    if (self->closed_) return;
    if (!frame) return self->close(frame.error());
    self->last_frame_ = Clock::now();
    self->pinged_ = false;
    self->dispatch(std::move(frame));
    if (!self->closed_) self->receive();
  });
}

void PeerChannel::dispatch(Result<FrameView> frame) {
  std::optional<std::uint32_t> id;
  if (auto* data = std::get_if<DataView>(&*frame)) {
    id = data->id;
  } else {
    const auto& f = std::get<Frame>(*frame);
    if (std::holds_alternative<Pong>(f)) return;
    if (auto* ping = std::get_if<Ping>(&f)) return link_->send(Pong{ping->nonce});
    if (std::holds_alternative<Incoming>(f)) {
      if (unsolicited_) unsolicited_(f);
      return;
    }
    id = std::visit([](const auto& x) { return id_of(x); }, f);
    if (auto* e = std::get_if<ErrorFrame>(&f); e && e->id == 0) {
      // About the link itself: the peer is closing it. Busy says when to come back.
      if (e->code == ErrorCode::Busy) busy_retry_ = std::chrono::milliseconds(std::max<std::uint32_t>(e->retry_after_ms, 100));
      return close("peer refused: " + e->message);
    }
  }
  if (!id) return;
  auto it = handlers_.find(*id);
  if (it == handlers_.end()) return;  // cancelled, or answered already
  // The handler may start or cancel requests: keep it alive while it runs.
  auto handler = it->second;
  if (!handler(frame)) handlers_.erase(*id);
}

void PeerChannel::keepalive() {
  auto self = std::weak_ptr<PeerChannel>(shared_from_this());
  timer_.expires_after(std::min(limits_.ping_after, limits_.pong_deadline) / 2);
  timer_.async_wait([self](const std::error_code& ec) {
    auto channel = self.lock();
    if (ec || !channel || channel->closed_) return;
    auto now = Clock::now();
    if (channel->pinged_ && now - channel->last_frame_ >= channel->limits_.ping_after + channel->limits_.pong_deadline)
      return channel->close("no answer to PING within " +
                            std::to_string(channel->limits_.pong_deadline.count() / 1000) + " s");
    if (channel->handlers_.empty() && channel->pins_ == 0 && now - channel->last_used_ >= channel->limits_.idle_close)
      return channel->close("idle");
    if (!channel->pinged_ && now - channel->last_frame_ >= channel->limits_.ping_after) {
      channel->pinged_ = true;
      channel->link_->send(Ping{static_cast<std::uint64_t>(now.time_since_epoch().count())});
    }
    channel->keepalive();
  });
}

void PeerChannel::close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  closed_why_ = why;
  timer_.cancel();
  link_->close();
  auto handlers = std::move(handlers_);
  handlers_.clear();
  for (auto& [id, handler] : handlers)
    asio::post(io_, [handler = std::move(handler), why]() mutable {
      Result<FrameView> r(Error{why});
      handler(r);
    });
}

PeerPool::PeerPool(asio::io_context& io, std::shared_ptr<PeerDialer> dialer, PoolLimits limits)
    : io_(io), dialer_(std::move(dialer)), limits_(limits) {}

PeerPool::~PeerPool() {
  *alive_ = false;
  close_all();
}

void PeerPool::channel(const PeerAddress& peer, const SwarmToken& swarm, ChannelFn done) {
  Key key{peer.node, swarm.id()};
  if (!peer.any_member) {
    if (auto it = channels_.find(key); it != channels_.end()) {
      if (it->second->open()) {
        ++stats_.reused;
        return asio::post(io_, [channel = it->second, done = std::move(done)] { done(channel); });
      }
      channels_.erase(it);
    }
    if (auto it = dialling_.find(key); it != dialling_.end()) return it->second->waiters.push_back(std::move(done));
  }
  auto dialling = std::make_shared<Dialling>();
  dialling->waiters.push_back(std::move(done));
  if (!peer.any_member) dialling_[key] = dialling;
  dialer_->dial(peer, swarm, [this, alive = alive_, key, dialling, swarm_id = swarm.id(),
                              any = peer.any_member](Result<std::shared_ptr<PeerLink>> link) {
    if (!*alive) {
      if (link) (*link)->close();
      return;
    }
    if (!any) dialling_.erase(key);
    Result<std::shared_ptr<PeerChannel>> result(Error{link ? "" : link.error()});
    if (link) {
      ++stats_.dials;
      auto node = (*link)->peer();
      auto channel = std::make_shared<PeerChannel>(io_, *link, node, swarm_id, limits_);
      channel->start();
      Key actual{node, swarm_id};
      if (auto old = channels_.find(actual); old != channels_.end() && old->second != channel && !old->second->open())
        channels_.erase(old);
      channels_.emplace(actual, channel);  // one already open for that node stays the shared one
      trim();
      result = channel;
    }
    for (auto& waiter : dialling->waiters) waiter(result);
  });
}

void PeerPool::trim() {
  std::erase_if(channels_, [](const auto& kv) { return !kv.second->open(); });
  while (channels_.size() > limits_.max_links) {
    auto idlest = channels_.end();
    for (auto it = channels_.begin(); it != channels_.end(); ++it)
      if (it->second->requests() == 0 && (idlest == channels_.end() || it->second->last_used() < idlest->second->last_used()))
        idlest = it;
    if (idlest == channels_.end()) break;  // every link is busy: keep them all
    idlest->second->close("too many links held");
    channels_.erase(idlest);
  }
}

void PeerPool::ask(const PeerAddress& peer, const SwarmToken& swarm, Frame request, std::chrono::milliseconds timeout,
                   std::function<void(Result<Frame>)> done) {
  struct Call {
    std::function<void(Result<Frame>)> done;
    asio::steady_timer timer;
    std::shared_ptr<PeerChannel> channel;
    std::uint32_t id = 0;
    void finish(Result<Frame> r) {
      if (!done) return;
      auto cb = std::move(done);
      done = nullptr;
      timer.cancel();
      cb(std::move(r));
    }
  };
  auto call = std::make_shared<Call>(Call{std::move(done), asio::steady_timer(io_), nullptr, 0});
  call->timer.expires_after(timeout);
  call->timer.async_wait([call](const std::error_code& ec) {
    if (ec) return;
    if (call->channel && call->id) call->channel->cancel(call->id);
    call->finish(Error{"no answer in time"});
  });
  channel(peer, swarm, [call, request = std::move(request)](Result<std::shared_ptr<PeerChannel>> channel) mutable {
    if (!call->done) return;
    if (!channel) return call->finish(Error{channel.error()});
    call->channel = *channel;
    call->id = (*channel)->request(std::move(request), [call](Result<FrameView>& answer) {
      if (!answer) {
        call->finish(Error{answer.error()});
        return false;
      }
      if (std::holds_alternative<DataView>(*answer)) {
        call->finish(Error{"unexpected DATA"});
        return false;
      }
      call->finish(std::move(std::get<Frame>(*answer)));
      return false;
    });
  });
}

void PeerPool::forget(const NodeId& node, const std::string& why) {
  for (auto it = channels_.begin(); it != channels_.end();) {
    if (it->first.first == node) {
      it->second->close(why);
      it = channels_.erase(it);
    } else {
      ++it;
    }
  }
}

void PeerPool::close_all() {
  for (auto& [key, channel] : channels_) channel->close("shutting down");
  channels_.clear();
}

PoolStats PeerPool::stats() const {
  auto out = stats_;
  out.open = static_cast<std::size_t>(
      std::count_if(channels_.begin(), channels_.end(), [](const auto& kv) { return kv.second->open(); }));
  return out;
}

}  // namespace annexswarm
