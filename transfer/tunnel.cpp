#include "transfer/tunnel.hpp"

#include <asio/write.hpp>

namespace annexswarm {

namespace {
std::array<std::uint8_t, 4> record_header(std::uint32_t length) {
  return {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
          static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)};
}
}  // namespace

Tunnel::Tunnel(asio::io_context& io, std::shared_ptr<PeerLink> link, LocalSocket local, std::chrono::milliseconds idle,
               Done done, Framing framing)
    : io_(io),
      link_(std::move(link)),
      local_(std::move(local)),
      idle_(idle),
      done_(std::move(done)),
      framing_(framing),
      idle_timer_(io),
      last_activity_(Clock::now()) {}

void Tunnel::start() {
  read_local();
  read_link();
  watch_idle();
}

void Tunnel::close(const std::string& why) { end(why); }

void Tunnel::read_local() {
  if (ended_ || local_done_) return;
  auto self = shared_from_this();
  // The link's queue first: the local side waits while the peer is slow to take bytes.
  if (link_->unsent_bytes() > kMaxUnsent) {
    return link_->when_drained([self] {
      // Told at once when the link is gone: then nothing drains.
      if (!self->ended_ && self->link_->unsent_bytes() > kMaxUnsent) return self->end("the link to the peer failed");
      self->read_local();
    });
  }
  local_.async_read_some(asio::buffer(buffer_.data() + peer::kMaxStreamHeader, kReadSize), [self](const std::error_code& ec,
                                                                                                   std::size_t n) {
    if (self->ended_) return;
    if (ec == asio::error::eof || (!ec && n == 0)) {
      self->local_done_ = true;
      self->link_->send(peer::Stream{{}, true}, [self](Result<bool> sent) {
        if (!sent) return self->end("cannot send to the peer: " + sent.error());
        self->fin_sent_ = true;  // out, after every byte before it
        self->half_closed();
      });
      return;
    }
    if (ec) return self->end("the local side failed: " + ec.message());
    self->last_activity_ = Clock::now();
    self->to_peer_ += n;
    auto* payload = self->buffer_.data() + peer::kMaxStreamHeader;
    auto header = peer::encode_stream_header(n);
    auto* start = payload - header.size();
    std::copy(header.begin(), header.end(), start);
    payload[n] = peer::encode_stream_trailer(false);
    // The link encrypts it all now: the buffer is free for the next read at once.
    self->link_->send_encoded(ByteView(start, header.size() + n + 1), [self](Result<bool> sent) {
      if (!sent) self->end("cannot send to the peer: " + sent.error());
    });
    self->read_local();
  });
}

void Tunnel::read_link() {
  if (ended_ || peer_done_) return;
  auto self = shared_from_this();
  link_->receive_tunnel([self](Result<peer::TunnelFrameView> frame) {
    if (self->ended_) return;
    if (!frame) return self->end("the link to the peer failed: " + frame.error());
    if (auto* stream = std::get_if<peer::StreamView>(&*frame)) {
      self->last_activity_ = Clock::now();
      self->from_peer_ += stream->bytes.size();
      // Written from the link's buffer, which stays put until the link is read again.
      return self->write_local(stream->bytes, stream->fin);
    }
    const auto& other = std::get<peer::Frame>(*frame);
    if (auto* e = std::get_if<peer::ErrorFrame>(&other)) return self->end("the peer ended the tunnel: " + e->message);
    if (auto* ping = std::get_if<peer::Ping>(&other)) {
      self->link_->send(peer::Pong{ping->nonce});
      return self->read_link();
    }
    self->end(std::string("the peer sent a ") + peer::frame_name(other) + " frame in a tunnel");
  });
}

// The link is read again only once these bytes are written: that is the back-pressure.
void Tunnel::write_local(ByteView bytes, bool fin) {
  auto self = shared_from_this();
  auto after = [self, fin] {
    if (self->ended_) return;
    if (!fin) return self->read_link();
    if (self->framing_ == Framing::Records) {
      // The fin record: the far side finished (a plain end of file would not say so).
      auto header = std::make_shared<std::array<std::uint8_t, 4>>(record_header(0));
      self->local_writing_ = true;
      return asio::async_write(self->local_, asio::buffer(*header), [self, header](const std::error_code& ec, std::size_t) {
        self->local_writing_ = false;
        if (self->ended_) return self->close_local();
        if (ec) return self->end("the local side failed: " + ec.message());
        std::error_code ignored;
        self->local_.shutdown(asio::socket_base::shutdown_send, ignored);
        self->peer_done_ = true;
        self->half_closed();
      });
    }
    std::error_code ignored;
    self->local_.shutdown(asio::socket_base::shutdown_send, ignored);
    self->peer_done_ = true;
    self->half_closed();
  };
  if (bytes.empty()) return after();
  local_writing_ = true;
  auto written = [self, after](const std::error_code& ec, std::size_t) {
    self->local_writing_ = false;
    if (self->ended_) return self->close_local();
    if (ec) return self->end("the local side failed: " + ec.message());
    after();
  };
  if (framing_ == Framing::Plain) return asio::async_write(local_, asio::buffer(bytes.data(), bytes.size()), written);
  auto header = std::make_shared<std::array<std::uint8_t, 4>>(record_header(static_cast<std::uint32_t>(bytes.size())));
  std::array<asio::const_buffer, 2> both{asio::buffer(*header), asio::buffer(bytes.data(), bytes.size())};
  asio::async_write(local_, both, [header, written](const std::error_code& ec, std::size_t n) { written(ec, n); });
}

void Tunnel::half_closed() {
  if (fin_sent_ && peer_done_) end(std::nullopt);
}

void Tunnel::end(std::optional<std::string> error) {
  if (ended_) return;
  ended_ = true;
  idle_timer_.cancel();
  auto self = shared_from_this();
  if (error && framing_ == Framing::Records && !peer_done_) broke_ = error->substr(0, 400);
  close_local();
  if (error) {
    // Tell the peer why, if the link still carries anything, then hang up.
    auto why = error->substr(0, 400);
    link_->send(peer::ErrorFrame{0, peer::ErrorCode::Internal, why, 0}, [self](Result<bool>) { self->link_->close(); });
  } else {
    // Whatever is still queued (a Pong) goes out first.
    link_->when_drained([self] { self->link_->close(); });
  }
  if (auto done = std::move(done_)) {
    done_ = nullptr;
    done(std::move(error));
  }
}

// Once ended: a local side that is `annex-swarm connect` hears why the tunnel broke, after
// the record being written (if any), so records never interleave; then the socket closes.
void Tunnel::close_local() {
  if (!local_.is_open()) return;
  std::error_code ignored;
  if (!broke_) return local_.close(ignored);  // a write under way is cancelled
  // A local side that stopped reading must not keep the socket for ever.
  auto self = shared_from_this();
  idle_timer_.expires_after(std::chrono::seconds(5));
  idle_timer_.async_wait([self](const std::error_code& ec) {
    std::error_code ignored;
    if (!ec) self->local_.close(ignored);
  });
  if (local_writing_) return;  // its completion comes back here
  auto record = std::make_shared<Bytes>();
  for (auto b : record_header(kBrokeRecord)) record->push_back(b);
  for (auto b : record_header(static_cast<std::uint32_t>(broke_->size()))) record->push_back(b);
  record->insert(record->end(), broke_->begin(), broke_->end());
  broke_.reset();
  local_writing_ = true;
  asio::async_write(local_, asio::buffer(*record), [self, record](const std::error_code&, std::size_t) {
    self->local_writing_ = false;
    self->close_local();
  });
}

void Tunnel::watch_idle() {
  if (ended_ || idle_.count() <= 0) return;
  auto self = shared_from_this();
  auto due = last_activity_ + idle_;
  idle_timer_.expires_at(due);
  idle_timer_.async_wait([self](const std::error_code& ec) {
    if (ec || self->ended_) return;
    if (Clock::now() - self->last_activity_ >= self->idle_)
      return self->end("idle for " + std::to_string(self->idle_.count()) + " ms");
    self->watch_idle();
  });
}

}  // namespace annexswarm
