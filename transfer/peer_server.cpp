#include "transfer/peer_server.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <algorithm>
#include <array>

#include "protocol/crypto.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
using namespace peer;

Result<Bytes> chunk_hashes(const std::filesystem::path& file, std::uint64_t& size_out) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open " + file.string() + ": " + std::strerror(errno)};
  Bytes hashes;
  Bytes buf(kManifestChunk);
  size_out = 0;
  while (true) {
    std::size_t filled = 0;
    while (filled < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + filled, buf.size() - filled);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Error{"cannot read " + file.string() + ": " + std::strerror(err)};
      }
      if (n == 0) break;
      filled += static_cast<std::size_t>(n);
    }
    if (filled == 0) break;
    auto digest = crypto::sha256(ByteView(buf.data(), filled));
    hashes.insert(hashes.end(), digest.begin(), digest.end());
    size_out += filled;
    if (filled < buf.size()) break;
  }
  ::close(fd);
  return hashes;
}

class PeerServer::Session : public std::enable_shared_from_this<Session> {
public:
  Session(PeerServer& server, std::shared_ptr<PeerLink> link, std::string from, std::string remote_ip)
      : server_(server),
        link_(std::move(link)),
        from_(std::move(from)),
        remote_ip_(std::move(remote_ip)),
        pacing_(server.io_),
        peer_upload_(server.limits_.upload_rate_per_peer),
        open_links_(server.open_links_) {}
  // May run after the server is gone (handlers still held by the io_context): it touches
  // only the shared link count.
  ~Session() { --*open_links_; }

  void close() {
    if (closed_) return;
    closed_ = true;
    link_->close();
  }

  void start() {
    auto self = shared_from_this();
    link_->establish(std::nullopt, [self](Result<PeerLink::Established> r) {
      if (!r) {
        self->server_.refused(self->from_ + ": " + r.error());
        return;  // PeerLink told the peer why and closed
      }
      self->peer_ = r->peer;
      self->swarm_ = r->swarm;
      if (self->server_.on_member_ && !self->remote_ip_.empty())
        self->server_.on_member_(self->remote_ip_, self->link_->local_endpoint());
      self->receive_loop();
    });
  }

private:
  using Request = std::variant<Have, Manifest, Get, Remove>;

  // Frames are read all the time, so a CANCEL or PING is seen while a GET is being
  // served; requests queue up and are served one after another.
  void receive_loop() {
    auto self = shared_from_this();
    link_->receive([self](Result<Frame> frame) {
      if (self->closed_) return;
      if (!frame) {
        // Garbage or a dead link: say so if we still can, then hang up.
        self->closed_ = true;
        self->link_->send(ErrorFrame{0, ErrorCode::BadFrame, frame.error()},
                          [self](Result<bool>) { self->link_->close(); });
        return;
      }
      std::visit([self](auto& f) { self->on_frame(f); }, *frame);
      if (!self->closed_) self->receive_loop();
    });
  }

  void on_frame(const Ping& f) { link_->send(Pong{f.nonce}); }
  void on_frame(const Cancel& f) {
    if (current_ && *current_ == f.id) cancel_current_ = true;
    std::erase_if(queue_, [&](const Request& r) { return std::visit([](auto& q) { return q.id; }, r) == f.id; });
  }
  void on_frame(const Have& f) { enqueue(f); }
  void on_frame(const Manifest& f) { enqueue(f); }
  void on_frame(const Get& f) { enqueue(f); }
  void on_frame(const Remove& f) { enqueue(f); }
  // Answered beside the queue: it waits on a dial that may take seconds.
  void on_frame(const DialBack& f) {
    auto self = shared_from_this();
    auto answer = [self, id = f.id](bool ok, std::string reason) {
      self->dialing_back_ = false;
      if (!self->closed_) self->link_->send(DialBackReply{id, ok, self->remote_ip_, std::move(reason)});
    };
    if (dialing_back_) return link_->send(ErrorFrame{f.id, ErrorCode::Busy, "one DIAL_BACK at a time"});
    if (!server_.dial_back_) return answer(false, "this node does not dial back");
    auto host = f.host.empty() ? remote_ip_ : f.host;
    // Members only reach this point; still, never aim our dials at our own machine or
    // at special addresses for them, and at a private one only from that private network.
    auto target = address_scope(host);
    auto from = address_scope(remote_ip_);
    bool allowed = target == AddressScope::Global || (target == AddressScope::Private && from == AddressScope::Private) ||
                   (target == AddressScope::Loopback && from == AddressScope::Loopback);
    if (!allowed) return answer(false, "will not dial " + host + " (not a public address)");
    dialing_back_ = true;
    server_.dial_back_(peer_, swarm_, host, f.port, [answer](Result<bool> r) {
      answer(r.ok(), r ? std::string() : r.error());
    });
  }
  void on_frame(const Reserve& f) {
    if (!server_.relay_.reserve) return link_->send(ReserveReply{f.id, false, 0, "this node is not a relay"});
    std::weak_ptr<Session> weak = shared_from_this();
    auto notify = [weak](const Frame& frame) {
      if (auto self = weak.lock(); self && !self->closed_) self->link_->send(frame);
    };
    auto r = server_.relay_.reserve(peer_, notify, std::weak_ptr<void>(shared_from_this()));
    link_->send(ReserveReply{f.id, r.ok(), r ? *r : 0u, r ? std::string() : r.error()});
  }
  void on_frame(const Connect& f) {
    if (!server_.relay_.connect) return link_->send(ConnectReply{f.id, false, {}, "this node is not a relay"});
    auto r = server_.relay_.connect(peer_, f.target);
    link_->send(ConnectReply{f.id, r.ok(), r ? *r : Bytes{}, r ? std::string() : r.error()});
  }
  void on_frame(const Hello&) { link_->send(ErrorFrame{0, ErrorCode::BadFrame, "unexpected HELLO"}); }
  void on_frame(const Proof&) { link_->send(ErrorFrame{0, ErrorCode::BadFrame, "unexpected PROOF"}); }
  template <class Reply>
  void on_frame(const Reply&) {
    link_->send(ErrorFrame{0, ErrorCode::Unsupported, "not a request"});
  }

  void enqueue(Request request) {
    auto id = std::visit([](auto& q) { return q.id; }, request);
    if (queue_.size() >= kMaxQueuedRequests)
      return link_->send(ErrorFrame{id, ErrorCode::Busy, "too many requests queued; wait for answers"});
    queue_.push_back(std::move(request));
    if (!current_) serve_next();
  }

  void serve_next() {
    current_.reset();
    cancel_current_ = false;
    if (closed_ || queue_.empty()) return;
    auto request = std::move(queue_.front());
    queue_.pop_front();
    current_ = std::visit([](auto& q) { return q.id; }, request);
    std::visit([this](auto& q) { serve(q); }, request);
  }

  // The answer to the current request; the next one is served once it is sent.
  void reply(const Frame& frame) {
    auto self = shared_from_this();
    link_->send(frame, [self](Result<bool> ok) {
      if (ok) self->serve_next();
    });
  }

  void serve(const Have& f) {
    HaveReply out{f.id, {}};
    for (const auto& k : f.keys) {
      auto key = AnnexKey::parse(k).value();  // validated by the decoder
      auto path = server_.locate_(key, f.repo);
      struct stat st;
      out.sizes.push_back(path && ::stat(path->c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) + 1 : 0);
    }
    reply(out);
  }

  void serve(const Manifest& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key, "");
    if (!path) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "not held here"});
    auto self = shared_from_this();
    server_.manifest_of(*path, [self, id = f.id](Result<std::shared_ptr<const ManifestReply>> m) {
      if (!m) return self->reply(ErrorFrame{id, ErrorCode::Internal, m.error()});
      auto reply = **m;
      reply.id = id;
      self->reply(reply);
    });
  }

  void serve(const Remove& f) {
    if (!server_.remove_) return reply(ErrorFrame{f.id, ErrorCode::Unsupported, "this node keeps no swarm stores"});
    auto removed = server_.remove_(AnnexKey::parse(f.key).value(), f.store);
    if (!removed) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, removed.error()});
    reply(HaveReply{f.id, {0}});
  }

  void serve(const Get& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key, "");
    if (!path) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "not held here"});
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      if (fd >= 0) ::close(fd);
      return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "cannot open the object"});
    }
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (f.offset >= size || f.length > size - f.offset) {
      ::close(fd);
      return reply(ErrorFrame{f.id, ErrorCode::BadRange, "range outside the object (size " + std::to_string(size) + ")"});
    }
    send_data(fd, f.id, f.offset, f.offset + f.length);
  }

  // One DATA frame at a time: the next pread happens once the previous frame is sent,
  // into the same buffer. The payload is read where the frame wants it, right after
  // room for its header, so the bytes are never copied into a frame.
  void send_data(int fd, std::uint32_t id, std::uint64_t offset, std::uint64_t end) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxDataBytes, end - offset));
    if (frame_.empty()) frame_.resize(kMaxDataHeader + kMaxDataBytes);
    auto* payload = frame_.data() + kMaxDataHeader;
    ssize_t got = ::pread(fd, payload, n, static_cast<off_t>(offset));
    if (got != static_cast<ssize_t>(n)) {
      ::close(fd);
      return reply(ErrorFrame{id, ErrorCode::Internal, "the object changed while being read"});
    }
    if (server_.corrupt_for_test_)
      for (std::size_t i = 0; i < n; ++i) payload[i] ^= 0x5a;
    auto header = encode_data_header(id, offset, offset + n == end, n);
    auto* start = payload - header.size();
    std::copy(header.begin(), header.end(), start);
    server_.stats_.bytes_served += n;
    served_ += n;
    if (server_.hang_up_after_for_test_ && served_ > server_.hang_up_after_for_test_) {
      ::close(fd);
      closed_ = true;
      return link_->close();
    }
    ByteView frame(start, header.size() + n);
    auto now = RateLimiter::Clock::now();
    auto wait = std::max(server_.upload_.take(n, now), peer_upload_.take(n, now));
    if (wait > RateLimiter::Clock::duration::zero()) {
      // Over the upload rate: hold this frame back until its bytes are paid for.
      ++server_.stats_.frames_paced;
      auto self = shared_from_this();
      pacing_.expires_after(wait);
      pacing_.async_wait([self, fd, id, next = offset + n, end, frame](const std::error_code&) {
        self->transmit(fd, id, next, end, frame);
      });
      return;
    }
    transmit(fd, id, offset + n, end, frame);
  }

  void transmit(int fd, std::uint32_t id, std::uint64_t next, std::uint64_t end, ByteView frame) {
    auto self = shared_from_this();
    link_->send_encoded(frame, [self, fd, id, next, end](Result<bool> ok) {
      if (!ok || next == end || self->cancel_current_) {
        ::close(fd);
        if (ok) self->serve_next();
        return;
      }
      self->send_data(fd, id, next, end);
    });
  }

  PeerServer& server_;
  std::shared_ptr<PeerLink> link_;
  std::string from_;  // the peer's address, for logs
  std::string remote_ip_;  // the address the peer is seen at (IPv4 without the v6 mapping)
  NodeId peer_;
  std::size_t swarm_ = 0;
  bool dialing_back_ = false;
  std::uint64_t served_ = 0;
  asio::steady_timer pacing_;
  RateLimiter peer_upload_;
  Bytes frame_;  // the DATA frame being sent
  std::deque<Request> queue_;
  std::optional<std::uint32_t> current_;  // id of the request being served
  bool cancel_current_ = false;
  bool closed_ = false;
  std::shared_ptr<std::size_t> open_links_;
};

void PeerServer::manifest_of(const std::filesystem::path& path, ManifestFn done) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return done(Error{"cannot read " + path.string() + ": " + std::strerror(errno)});
  // A cached manifest is reused while the file is unchanged (annex objects never change
  // in place; a replaced file has another inode or time).
  ManifestCacheKey key{path.string(), static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                       static_cast<std::uint64_t>(st.st_size),
                       static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  for (auto it = manifests_.begin(); it != manifests_.end(); ++it) {
    if (it->first == key) {
      manifests_.splice(manifests_.begin(), manifests_, it);  // most recently used first
      return done(manifests_.front().second);
    }
  }
  // Hashing a large object takes a while: off the io thread.
  asio::post(hasher_, [this, alive = std::weak_ptr<int>(lifetime_), path, key, done = std::move(done)] {
    std::uint64_t size = 0;
    auto hashes = chunk_hashes(path, size);
    asio::post(io_, [this, alive, key, size, done, hashes = std::move(hashes)]() mutable {
      if (alive.expired()) return;  // the server is gone
      if (!hashes) return done(Error{hashes.error()});
      auto manifest = std::make_shared<const ManifestReply>(ManifestReply{0, kManifestChunk, size, std::move(*hashes)});
      manifests_.emplace_front(key, manifest);
      if (manifests_.size() > kManifestCacheEntries) manifests_.pop_back();
      done(manifest);
    });
  });
}

PeerServer::PeerServer(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials,
                       std::vector<SwarmToken> swarms, ObjectLocator locate, PeerServerLimits limits)
    : io_(io),
      credentials_(std::move(credentials)),
      swarms_(std::move(swarms)),
      locate_(std::move(locate)),
      limits_(limits),
      acceptor_(io),
      upload_(limits.upload_rate) {}

PeerServer::~PeerServer() {
  close();
  hasher_.join();
}

Result<std::uint16_t> PeerServer::listen(const asio::ip::address& address, std::uint16_t port) {
  std::error_code ec;
  asio::ip::tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec && address.is_v6()) acceptor_.set_option(asio::ip::v6_only(false), ec);  // dual-stack
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{"cannot listen on TCP port " + std::to_string(port) + ": " + ec.message()};
  accept();
  return acceptor_.local_endpoint().port();
}

void PeerServer::close() {
  closed_ = true;
  std::error_code ec;
  acceptor_.close(ec);
  for (auto& weak : sessions_)
    if (auto session = weak.lock()) session->close();
  sessions_.clear();
}

void PeerServer::refused(const std::string& why) {
  ++stats_.links_refused;
  if (on_refused_) on_refused_(why);
}

void PeerServer::accept() {
  acceptor_.async_accept([this](const std::error_code& ec, asio::ip::tcp::socket socket) {
    if (closed_) return;
    if (!ec) {
      ++stats_.links_accepted;
      std::error_code ignored;
      auto remote = socket.remote_endpoint(ignored);
      auto address = unmapped(remote.address());
      auto from = host_port(address.to_string(), remote.port());
      if (relay_.join) {
        // A relay looks at the first bytes: a circuit's token, or a TLS handshake.
        auto deadline = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(10));
        auto shared = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
        deadline->async_wait([shared](const std::error_code& tec) {
          std::error_code ignored;
          if (!tec) shared->close(ignored);
        });
        classify(shared, from, address.to_string(), deadline);
      } else {
        serve_tls(std::move(socket), from, address.to_string());
      }
    }
    accept();
  });
}

void PeerServer::serve_tls(asio::ip::tcp::socket socket, const std::string& from, const std::string& address) {
  if (*open_links_ >= limits_.max_peers) {
    refused(from + ": over the cap of " + std::to_string(limits_.max_peers) + " peers");  // before a handshake
    return;
  }
  ++*open_links_;
  auto stream = std::make_shared<TlsStream>(std::move(socket), credentials_, TlsStream::Side::Server);
  auto link = std::make_shared<PeerLink>(stream, swarms_, Role::Listener);
  auto session = std::make_shared<Session>(*this, link, from, address);
  std::erase_if(sessions_, [](const std::weak_ptr<Session>& w) { return w.expired(); });
  sessions_.push_back(session);
  session->start();
}

void PeerServer::adopt(asio::ip::tcp::socket socket, const std::string& from) {
  if (closed_) return;
  ++stats_.links_accepted;
  serve_tls(std::move(socket), from, "");
}

void PeerServer::classify(std::shared_ptr<asio::ip::tcp::socket> socket, std::string from, std::string address,
                          std::shared_ptr<asio::steady_timer> deadline) {
  std::weak_ptr<int> alive = lifetime_;
  socket->async_wait(asio::ip::tcp::socket::wait_read, [this, alive, socket, from, address, deadline](
                                                           const std::error_code& ec) {
    if (alive.expired() || closed_) return;
    if (ec) return;  // closed by the deadline, or gone
    std::array<std::uint8_t, 4> head{};
    std::error_code pec;
    auto n = socket->receive(asio::buffer(head), asio::socket_base::message_peek, pec);
    if (pec || n == 0) {
      std::error_code ignored;
      socket->close(ignored);
      return;
    }
    if (n < head.size() && std::equal(head.begin(), head.begin() + n, kCircuitMagic.begin())) {
      // Part of what may be a circuit token so far: look again shortly.
      auto again = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(10));
      again->async_wait([this, alive, again, socket, from, address, deadline](const std::error_code& tec) {
        if (!tec && !alive.expired()) classify(socket, from, address, deadline);
      });
      return;
    }
    if (!std::equal(kCircuitMagic.begin(), kCircuitMagic.end(), head.begin())) {
      deadline->cancel();
      return serve_tls(std::move(*socket), from, address);
    }
    auto preamble = std::make_shared<Bytes>(kCircuitMagic.size() + kCircuitToken);
    asio::async_read(*socket, asio::buffer(*preamble), [this, alive, socket, preamble, deadline](
                                                           const std::error_code& rec, std::size_t) {
      if (alive.expired() || closed_ || rec) return;
      deadline->cancel();
      relay_.join(std::move(*socket), Bytes(preamble->begin() + kCircuitMagic.size(), preamble->end()));
    });
  });
}

}  // namespace annexswarm
