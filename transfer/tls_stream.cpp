#include "transfer/tls_stream.hpp"

#include <sys/socket.h>

#include <asio/post.hpp>
#include <cstdint>

namespace annexswarm {
namespace {
// GnuTLS's default push uses plain send(): a peer that hung up would kill the process
// with SIGPIPE.
ssize_t push_nosignal(gnutls_transport_ptr_t fd, const void* data, std::size_t size) {
  return ::send(static_cast<int>(reinterpret_cast<std::intptr_t>(fd)), data, size, MSG_NOSIGNAL);
}
}  // namespace

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::from_identity(const dht::crypto::Identity& identity) {
  auto creds = std::shared_ptr<TlsCredentials>(new TlsCredentials());
  if (gnutls_certificate_allocate_credentials(&creds->creds_) < 0) return Error{"cannot allocate TLS credentials"};
  // OpenDHT's identity certificate is a CA (key usage: certificate signing only), which
  // TLS may not use to sign handshakes. Issue a leaf certificate for the same key: the
  // node id (the public key id) stays the same.
  dht::crypto::Certificate leaf;
  try {
    leaf = dht::crypto::Certificate::generate(*identity.first, "annex-swarm node", identity, false,
                                              365LL * 24 * 3600);
  } catch (const std::exception& e) {
    return Error{std::string("cannot issue a TLS certificate for this node: ") + e.what()};
  }
  auto key = identity.first->serialize();
  auto cert = leaf.toString(false);
  gnutls_datum_t key_d{key.data(), static_cast<unsigned>(key.size())};
  gnutls_datum_t cert_d{reinterpret_cast<unsigned char*>(cert.data()), static_cast<unsigned>(cert.size())};
  int rc = gnutls_certificate_set_x509_key_mem(creds->creds_, &cert_d, &key_d, GNUTLS_X509_FMT_PEM);
  if (rc < 0) return Error{std::string("cannot load the node identity into TLS: ") + gnutls_strerror(rc)};
  return creds;
}

TlsCredentials::~TlsCredentials() {
  if (creds_) gnutls_certificate_free_credentials(creds_);
}

TlsStream::TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<TlsCredentials> credentials, Side side)
    : socket_(std::move(socket)), credentials_(std::move(credentials)) {
  gnutls_init(&session_, (side == Side::Server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK);
  gnutls_priority_set_direct(session_, kTlsPriorities, nullptr);
  gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_->get());
  if (side == Side::Server) gnutls_certificate_server_set_request(session_, GNUTLS_CERT_REQUIRE);
  std::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  gnutls_transport_set_int(session_, socket_.native_handle());
  gnutls_transport_set_push_function(session_, push_nosignal);
}

TlsStream::~TlsStream() { gnutls_deinit(session_); }

// Runs `op` (a GnuTLS call) until it stops asking to be called again; waits for the
// socket in the direction GnuTLS needs.
template <class Op, class Done>
void TlsStream::retry(Op op, Done done) {
  int rc = op();
  if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
    // Records GnuTLS already pulled off the socket will never make it readable again.
    if (!gnutls_record_get_direction(session_) && gnutls_record_check_pending(session_) > 0) {
      asio::post(socket_.get_executor(), [self = shared_from_this(), op, done] { self->retry(op, done); });
      return;
    }
    auto wait = gnutls_record_get_direction(session_) ? asio::socket_base::wait_write
                                                      : asio::socket_base::wait_read;
    socket_.async_wait(wait, [self = shared_from_this(), op, done](const std::error_code& ec) {
      if (ec) return done(GNUTLS_E_PUSH_ERROR);
      self->retry(op, done);
    });
    return;
  }
  done(rc);
}

void TlsStream::handshake(std::function<void(Result<NodeId>)> done) {
  auto self = shared_from_this();
  retry([self] { return gnutls_handshake(self->session_); },
        [self, done](int rc) {
          if (rc < 0) return done(Error{std::string("TLS handshake failed: ") + gnutls_strerror(rc)});
          unsigned count = 0;
          const gnutls_datum_t* certs = gnutls_certificate_get_peers(self->session_, &count);
          if (!certs || count == 0) return done(Error{"peer presented no certificate"});
          try {
            dht::crypto::Certificate cert(certs[0].data, certs[0].size);
            NodeId id;
            std::copy_n(cert.getId().data(), id.bytes.size(), id.bytes.begin());
            done(id);
          } catch (const std::exception& e) {
            done(Error{std::string("peer certificate is unreadable: ") + e.what()});
          }
        });
}

Result<Bytes> TlsStream::exporter(std::string_view label, std::size_t size) {
  Bytes out(size);
  int rc = gnutls_prf_rfc5705(session_, label.size(), label.data(), 0, nullptr, size,
                              reinterpret_cast<char*>(out.data()));
  if (rc < 0) return Error{std::string("TLS exporter failed: ") + gnutls_strerror(rc)};
  return out;
}

void TlsStream::write(Bytes data, std::function<void(Result<bool>)> done) {
  if (closed_) {
    asio::post(socket_.get_executor(), [done] { done(Error{"connection closed"}); });
    return;
  }
  outbox_.emplace_back(std::move(data), std::move(done));
  if (!writing_) write_next();
}

void TlsStream::write_next() {
  if (outbox_.empty() || closed_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  auto self = shared_from_this();
  auto& front = outbox_.front().first;
  retry(
      [self, &front] {
        return static_cast<int>(gnutls_record_send(self->session_, front.data() + self->written_,
                                                   front.size() - self->written_));
      },
      [self](int rc) {
        if (rc < 0) {
          auto outbox = std::move(self->outbox_);
          self->outbox_.clear();
          self->writing_ = false;
          for (auto& [bytes, cb] : outbox)
            if (cb) cb(Error{std::string("TLS write failed: ") + gnutls_strerror(rc)});
          return;
        }
        self->written_ += static_cast<std::size_t>(rc);
        if (self->written_ < self->outbox_.front().first.size()) return self->write_next();
        auto cb = std::move(self->outbox_.front().second);
        self->outbox_.pop_front();
        self->written_ = 0;
        if (cb) cb(true);
        self->write_next();
      });
}

void TlsStream::read(std::function<void(Result<Bytes>)> done) {
  auto self = shared_from_this();
  auto buffer = std::make_shared<Bytes>(64 * 1024);
  retry([self, buffer] {
          return static_cast<int>(gnutls_record_recv(self->session_, buffer->data(), buffer->size()));
        },
        [buffer, done](int rc) {
          if (rc == 0) return done(Error{"connection closed by peer"});
          if (rc < 0) return done(Error{std::string("TLS read failed: ") + gnutls_strerror(rc)});
          buffer->resize(static_cast<std::size_t>(rc));
          done(std::move(*buffer));
        });
}

void TlsStream::close() {
  if (closed_) return;
  closed_ = true;
  gnutls_bye(session_, GNUTLS_SHUT_WR);  // best effort; the socket is non-blocking
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace annexswarm
