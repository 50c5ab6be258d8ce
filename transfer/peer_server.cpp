#include "transfer/peer_server.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>

#include "protocol/crypto.hpp"

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
  Session(PeerServer& server, std::shared_ptr<PeerLink> link)
      : server_(server), link_(std::move(link)), pacing_(server.io_) {}
  ~Session() { --server_.stats_.links_open; }

  void start() {
    auto self = shared_from_this();
    link_->establish(std::nullopt, [self](Result<PeerLink::Established> r) {
      if (!r) {
        ++self->server_.stats_.links_refused;
        return;  // PeerLink told the peer why and closed
      }
      self->next_request();
    });
  }

private:
  void next_request() {
    auto self = shared_from_this();
    link_->receive([self](Result<Frame> frame) {
      if (!frame) {
        // Garbage or a dead link: say so if we still can, then hang up.
        self->link_->send(ErrorFrame{0, ErrorCode::BadFrame, frame.error()},
                          [self](Result<bool>) { self->link_->close(); });
        return;
      }
      std::visit([self](auto& f) { self->handle(f); }, *frame);
    });
  }

  void reply(const Frame& frame) {
    auto self = shared_from_this();
    link_->send(frame, [self](Result<bool> ok) {
      if (ok) self->next_request();
    });
  }

  void handle(const Ping& f) { reply(Pong{f.nonce}); }
  void handle(const Cancel&) { next_request(); }  // requests are served in order; nothing pending

  void handle(const Have& f) {
    HaveReply out{f.id, {}};
    for (const auto& k : f.keys) {
      auto key = AnnexKey::parse(k).value();  // validated by the decoder
      auto path = server_.locate_(key);
      struct stat st;
      out.sizes.push_back(path && ::stat(path->c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) + 1 : 0);
    }
    reply(out);
  }

  void handle(const Manifest& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key);
    if (!path) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "not held here"});
    // Hashing a large object takes a while: off the io thread.
    auto self = shared_from_this();
    asio::post(server_.hasher_, [self, id = f.id, path = *path] {
      std::uint64_t size = 0;
      auto hashes = chunk_hashes(path, size);
      asio::post(self->server_.io_, [self, id, size, hashes = std::move(hashes)]() mutable {
        if (!hashes) return self->reply(ErrorFrame{id, ErrorCode::Internal, hashes.error()});
        self->reply(ManifestReply{id, kManifestChunk, size, std::move(*hashes)});
      });
    });
  }

  void handle(const Get& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key);
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

  void handle(const Hello&) { reply(ErrorFrame{0, ErrorCode::BadFrame, "unexpected HELLO"}); }
  void handle(const Proof&) { reply(ErrorFrame{0, ErrorCode::BadFrame, "unexpected PROOF"}); }
  template <class Reply>
  void handle(const Reply&) {
    reply(ErrorFrame{0, ErrorCode::Unsupported, "not a request"});
  }

  // One DATA frame at a time: the next pread happens once the previous frame is sent.
  void send_data(int fd, std::uint32_t id, std::uint64_t offset, std::uint64_t end) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxDataBytes, end - offset));
    Data data{id, offset, offset + n == end, Bytes(n)};
    ssize_t got = ::pread(fd, data.bytes.data(), n, static_cast<off_t>(offset));
    if (got != static_cast<ssize_t>(n)) {
      ::close(fd);
      return reply(ErrorFrame{id, ErrorCode::Internal, "the object changed while being read"});
    }
    if (server_.corrupt_for_test_)
      for (auto& b : data.bytes) b ^= 0x5a;
    server_.stats_.bytes_served += n;
    served_ += n;
    if (server_.hang_up_after_for_test_ && served_ > server_.hang_up_after_for_test_) {
      ::close(fd);
      return link_->close();
    }
    auto self = shared_from_this();
    auto wait = server_.upload_.take(n, RateLimiter::Clock::now());
    if (wait > RateLimiter::Clock::duration::zero()) {
      // Over the upload rate: hold this frame back until its bytes are paid for.
      pacing_.expires_after(wait);
      pacing_.async_wait([self, fd, id, offset, n, end, data = std::move(data)](const std::error_code&) mutable {
        self->transmit(fd, id, offset + n, end, std::move(data));
      });
      return;
    }
    transmit(fd, id, offset + n, end, std::move(data));
  }

  void transmit(int fd, std::uint32_t id, std::uint64_t next, std::uint64_t end, Data data) {
    auto self = shared_from_this();
    link_->send(data, [self, fd, id, next, end](Result<bool> ok) {
      if (!ok || next == end) {
        ::close(fd);
        if (ok) self->next_request();
        return;
      }
      self->send_data(fd, id, next, end);
    });
  }

  PeerServer& server_;
  std::shared_ptr<PeerLink> link_;
  std::uint64_t served_ = 0;
  asio::steady_timer pacing_;
};

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
}

void PeerServer::accept() {
  acceptor_.async_accept([this](const std::error_code& ec, asio::ip::tcp::socket socket) {
    if (closed_) return;
    if (!ec) {
      ++stats_.links_accepted;
      if (stats_.links_open >= limits_.max_peers) {
        ++stats_.links_refused;  // over the cap: hang up before spending a handshake
      } else {
        ++stats_.links_open;
        auto stream = std::make_shared<TlsStream>(std::move(socket), credentials_, TlsStream::Side::Server);
        auto link = std::make_shared<PeerLink>(stream, swarms_, Role::Listener);
        std::make_shared<Session>(*this, link)->start();
      }
    }
    accept();
  });
}

}  // namespace annexswarm
