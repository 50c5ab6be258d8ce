#pragma once
// One request to one swarm member over a fresh link: dial, send, take the first answer
// (a reply or an ERROR), hang up. For HAVE and REMOVE, which are small and rare.
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>

#include "transfer/peer_dialer.hpp"

namespace annexswarm {

// `done` runs exactly once: with the answer, or with why there is none (cannot dial,
// the link failed, nothing came within `timeout`).
void ask_peer(asio::io_context& io, PeerDialer& dialer, const PeerAddress& peer, const SwarmToken& swarm,
              peer::Frame request, std::chrono::milliseconds timeout,
              std::function<void(Result<peer::Frame>)> done);

}  // namespace annexswarm
