#include "relay/relay_client.hpp"

namespace annexswarm {

struct RelayReservations::Slot {
  RelayCandidate relay;
  std::shared_ptr<PeerChannel> channel;
  asio::ip::tcp::endpoint endpoint;
  bool confirmed = false;
  bool gone = false;
  std::uint64_t circuits = 0;
  std::unique_ptr<asio::steady_timer> renew;
  std::chrono::seconds ttl{120};
  std::chrono::steady_clock::time_point last_ok{};
};

RelayReservations::RelayReservations(asio::io_context& io, PeerPool& pool, std::vector<SwarmToken> swarms,
                                     IncomingFn incoming)
    : io_(io), pool_(pool), swarms_(std::move(swarms)), incoming_(std::move(incoming)) {}

RelayReservations::~RelayReservations() { release_all(); }

void RelayReservations::reserve(const std::vector<RelayCandidate>& candidates, std::size_t count) {
  for (const auto& c : candidates) {
    if (slots_.size() >= count) break;
    if (slots_.count(c.address.node)) continue;
    auto slot = std::make_shared<Slot>();
    slot->relay = c;
    slot->renew = std::make_unique<asio::steady_timer>(io_);
    slots_[c.address.node] = slot;
    run(slot);
  }
}

void RelayReservations::run(std::shared_ptr<Slot> slot) {
  std::weak_ptr<int> alive = lifetime_;
  pool_.channel(slot->relay.address, swarms_[slot->relay.swarm],
                [this, alive, slot](Result<std::shared_ptr<PeerChannel>> channel) {
                  if (alive.expired() || slot->gone) return;
                  if (!channel)
                    return drop(slot, "cannot reach relay " + slot->relay.address.node.hex() + ": " + channel.error());
                  slot->channel = *channel;
                  slot->channel->pin();  // the reservation lives as long as this link
                  slot->endpoint = slot->channel->remote_endpoint();  // circuits are opened to it
                  slot->channel->on_unsolicited([this, alive, slot](const peer::Frame& frame) {
                    auto* in = std::get_if<peer::Incoming>(&frame);
                    if (alive.expired() || slot->gone || !in) return;
                    ++slot->circuits;
                    incoming_(slot->endpoint, in->token, in->from);
                  });
                  send_reserve(slot);
                });
}

void RelayReservations::send_reserve(std::shared_ptr<Slot> slot) {
  std::weak_ptr<int> alive = lifetime_;
  slot->channel->request(peer::Reserve{}, [this, alive, slot](Result<peer::FrameView>& frame) {
    if (alive.expired() || slot->gone) return false;
    auto name = slot->relay.address.node.hex();
    if (!frame) {
      drop(slot, "relay " + name + " link lost: " + frame.error());
      return false;
    }
    auto* f = std::get_if<peer::Frame>(&*frame);
    if (auto* reply = f ? std::get_if<peer::ReserveReply>(f) : nullptr) {
      if (!reply->ok) {
        drop(slot, "relay " + name + " refused: " + reply->reason);
        return false;
      }
      bool first = !slot->confirmed;
      slot->confirmed = true;
      slot->ttl = std::chrono::seconds(std::max<std::uint32_t>(reply->ttl, 2));
      slot->last_ok = std::chrono::steady_clock::now();
      if (first) {
        renew(slot);
        if (on_change_) on_change_("");
      }
    } else if (auto* err = f ? std::get_if<peer::ErrorFrame>(f) : nullptr) {
      drop(slot, "relay " + name + ": " + err->message);
    }
    return false;
  });
}

void RelayReservations::renew(std::shared_ptr<Slot> slot) {
  // RESERVE again at half the ttl; a relay that stopped answering (its host died without
  // closing the connection) is given up once a whole ttl passed without a reply.
  std::weak_ptr<int> alive = lifetime_;
  slot->renew->expires_after(slot->ttl / 2);
  slot->renew->async_wait([this, alive, slot](const std::error_code& ec) {
    if (ec || alive.expired() || slot->gone) return;
    if (std::chrono::steady_clock::now() - slot->last_ok > slot->ttl)
      return drop(slot, "relay " + slot->relay.address.node.hex() + " stopped answering");
    if (!slot->channel->open()) return drop(slot, "relay " + slot->relay.address.node.hex() + " link lost");
    send_reserve(slot);
    renew(slot);
  });
}

void RelayReservations::drop(const std::shared_ptr<Slot>& slot, const std::string& why) {
  if (slot->gone) return;
  slot->gone = true;
  slot->renew->cancel();
  if (slot->channel) {
    slot->channel->on_unsolicited(nullptr);
    slot->channel->unpin();
  }
  slots_.erase(slot->relay.address.node);
  if (on_change_) on_change_(why);
}

void RelayReservations::release_all() {
  for (auto& [id, slot] : slots_) {
    slot->gone = true;
    slot->renew->cancel();
    if (slot->channel) {
      slot->channel->on_unsolicited(nullptr);
      slot->channel->unpin();
      pool_.forget(id, "relay reservation released");  // the relay ends it at once
    }
  }
  slots_.clear();
}

std::vector<RelayReservations::Held> RelayReservations::held() const {
  std::vector<Held> out;
  for (const auto& [id, s] : slots_) out.push_back({id, s->endpoint, s->relay.swarm, s->confirmed, s->circuits});
  return out;
}

std::size_t RelayReservations::confirmed_count() const {
  std::size_t n = 0;
  for (const auto& [id, s] : slots_) n += s->confirmed ? 1 : 0;
  return n;
}

}  // namespace annexswarm
