#include "transfer/tls_stream.hpp"

#include "protocol/ip_address.hpp"

#include <asio/post.hpp>
#include <cstring>
#include <asio/write.hpp>
#include <cerrno>

namespace annexswarm {

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

namespace {
// Buffers live as long as the stream and never shrink, so the data path allocates
// nothing per record.
constexpr std::size_t kInboundBytes = 256 * 1024;
constexpr std::size_t kOutboundReserve = 512 * 1024;
}  // namespace

TlsStream::TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<TlsCredentials> credentials, Side side)
    : socket_(std::move(socket)), credentials_(std::move(credentials)), inbound_(kInboundBytes) {
  outbound_.reserve(kOutboundReserve);
  sending_.reserve(kOutboundReserve);
  gnutls_init(&session_, (side == Side::Server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK);
  gnutls_priority_set_direct(session_, kTlsPriorities, nullptr);
  gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_->get());
  if (side == Side::Server) gnutls_certificate_server_set_request(session_, GNUTLS_CERT_REQUIRE);
  gnutls_transport_set_ptr(session_, this);
  gnutls_transport_set_pull_function(session_, &TlsStream::pull);
  gnutls_transport_set_push_function(session_, &TlsStream::push);
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

asio::ip::tcp::endpoint TlsStream::local_endpoint() const {
  std::error_code ec;
  auto e = socket_.local_endpoint(ec);
  return ec ? asio::ip::tcp::endpoint{} : e;
}

asio::ip::tcp::endpoint TlsStream::remote_endpoint() const {
  std::error_code ec;
  auto e = socket_.remote_endpoint(ec);
  return ec ? asio::ip::tcp::endpoint{} : e;
}

asio::ip::address unmapped(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  return address;
}

std::string TlsStream::remote_address() const {
  std::error_code ec;
  auto e = socket_.remote_endpoint(ec);
  if (ec) return {};
  return host_port(unmapped(e.address()).to_string(), e.port());
}

TlsStream::~TlsStream() { gnutls_deinit(session_); }

ssize_t TlsStream::pull(gnutls_transport_ptr_t p, void* data, std::size_t size) {
  auto* self = static_cast<TlsStream*>(p);
  std::size_t available = self->in_end_ - self->in_begin_;
  if (available == 0) {
    if (self->error_) return 0;  // the peer closed: end of stream
    gnutls_transport_set_errno(self->session_, EAGAIN);
    return -1;
  }
  std::size_t n = std::min(size, available);
  std::memcpy(data, self->inbound_.data() + self->in_begin_, n);
  self->in_begin_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t TlsStream::push(gnutls_transport_ptr_t p, const void* data, std::size_t size) {
  auto* self = static_cast<TlsStream*>(p);
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  self->outbound_.insert(self->outbound_.end(), bytes, bytes + size);
  self->pushed_ += size;
  return static_cast<ssize_t>(size);
}

void TlsStream::fill() {
  if (reading_ || error_ || closed_) return;
  // GnuTLS asks for more only when it took everything, so this rarely moves bytes.
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  if (in_end_ == inbound_.size()) {
    std::memmove(inbound_.data(), inbound_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  reading_ = true;
  socket_.async_read_some(asio::buffer(inbound_.data() + in_end_, inbound_.size() - in_end_),
                          [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                            self->reading_ = false;
                            if (ec)
                              self->error_ = ec == asio::error::eof ? "connection closed by peer" : ec.message();
                            else
                              self->in_end_ += n;
                            self->progress();
                          });
}

void TlsStream::flush() {
  if (sending_now_ || outbound_.empty() || closed_) return;
  sending_now_ = true;
  sending_.swap(outbound_);
  outbound_.clear();
  asio::async_write(socket_, asio::buffer(sending_), [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
    self->sending_now_ = false;
    if (ec) return self->fail_all("TLS write failed: " + ec.message());
    self->written_ += n;
    self->sending_.clear();
    while (!self->write_waiters_.empty() && self->write_waiters_.front().first <= self->written_) {
      auto cb = std::move(self->write_waiters_.front().second);
      self->write_waiters_.pop_front();
      if (cb) cb(true);
    }
    self->flush();
  });
}

void TlsStream::progress() {
  if (handshake_done_) drive_handshake();
  if (read_done_) drive_read();
}

void TlsStream::fail_all(const std::string& why) {
  if (!error_) error_ = why;
  auto waiters = std::move(write_waiters_);
  write_waiters_.clear();
  for (auto& [mark, cb] : waiters)
    if (cb) cb(Error{why});
  progress();
}

void TlsStream::handshake(std::function<void(Result<NodeId>)> done) {
  if (closed_) {
    asio::post(socket_.get_executor(), [done = std::move(done)] { done(Error{"connection closed"}); });
    return;
  }
  handshake_done_ = std::move(done);
  drive_handshake();
}

void TlsStream::drive_handshake() {
  int rc = gnutls_handshake(session_);
  flush();
  if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
    if (error_) rc = GNUTLS_E_PULL_ERROR;
    else return fill();
  }
  auto done = std::move(handshake_done_);
  handshake_done_ = nullptr;
  if (rc < 0) return done(Error{std::string("TLS handshake failed: ") + gnutls_strerror(rc)});
  unsigned count = 0;
  const gnutls_datum_t* certs = gnutls_certificate_get_peers(session_, &count);
  if (!certs || count == 0) return done(Error{"peer presented no certificate"});
  try {
    dht::crypto::Certificate cert(certs[0].data, certs[0].size);
    NodeId id;
    std::copy_n(cert.getId().data(), id.bytes.size(), id.bytes.begin());
    done(id);
  } catch (const std::exception& e) {
    done(Error{std::string("peer certificate is unreadable: ") + e.what()});
  }
}

Result<Bytes> TlsStream::exporter(std::string_view label, std::size_t size) {
  Bytes out(size);
  int rc = gnutls_prf_rfc5705(session_, label.size(), label.data(), 0, nullptr, size,
                              reinterpret_cast<char*>(out.data()));
  if (rc < 0) return Error{std::string("TLS exporter failed: ") + gnutls_strerror(rc)};
  return out;
}

void TlsStream::write(ByteView data, std::function<void(Result<bool>)> done) {
  if (closed_ || error_) {
    asio::post(socket_.get_executor(), [done, why = error_.value_or("connection closed")] {
      if (done) done(Error{why});
    });
    return;
  }
  // The push function never blocks, so GnuTLS takes everything now.
  std::size_t offset = 0;
  while (offset < data.size()) {
    auto rc = gnutls_record_send(session_, data.data() + offset, data.size() - offset);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) continue;
    if (rc < 0) {
      auto why = std::string("TLS write failed: ") + gnutls_strerror(static_cast<int>(rc));
      asio::post(socket_.get_executor(), [done, why] {
        if (done) done(Error{why});
      });
      return;
    }
    offset += static_cast<std::size_t>(rc);
  }
  write_waiters_.emplace_back(pushed_, std::move(done));
  flush();
}

void TlsStream::when_drained(std::function<void()> fn) {
  if (unsent_bytes() == 0 || closed_ || error_) {
    asio::post(socket_.get_executor(), std::move(fn));
    return;
  }
  write_waiters_.emplace_back(pushed_, [fn = std::move(fn)](Result<bool>) { fn(); });
}

void TlsStream::read(MutableByteView into, std::function<void(Result<std::size_t>)> done) {
  if (closed_) {
    asio::post(socket_.get_executor(), [done = std::move(done)] { done(Error{"connection closed"}); });
    return;
  }
  read_into_ = into;
  read_done_ = std::move(done);
  drive_read();
}

void TlsStream::drive_read() {
  // Decrypt every whole record already here, while a record fits, in one callback.
  std::size_t got = 0;
  ssize_t rc = 0;
  auto into = read_into_;
  do {
    rc = gnutls_record_recv(session_, into.data() + got, into.size() - got);
    if (rc <= 0) break;
    got += static_cast<std::size_t>(rc);
  } while (into.size() - got >= kTlsRecordBytes);
  flush();  // a post-handshake message may need an answer
  if (got == 0 && (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)) {
    if (!error_) return fill();
    rc = 0;
  }
  auto done = std::move(read_done_);
  read_done_ = nullptr;
  read_into_ = {};
  if (got > 0) return done(got);  // an error surfaces on the next read
  if (rc == 0) return done(Error{error_.value_or("connection closed by peer")});
  done(Error{std::string("TLS read failed: ") + gnutls_strerror(static_cast<int>(rc))});
}

void TlsStream::close() {
  if (closed_) return;
  gnutls_bye(session_, GNUTLS_SHUT_WR);  // queues the close alert; best effort
  closed_ = true;
  std::error_code ec;
  if (!outbound_.empty() && !sending_now_) asio::write(socket_, asio::buffer(outbound_), ec);
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  // Whoever waits on this stream hears that it closed, from the io_context: the callbacks
  // leave the stream now, so an owner they hold (and that holds the stream) is not kept
  // alive by it even when the io_context never runs again.
  auto executor = socket_.get_executor();
  const std::string why = "connection closed";
  if (auto done = std::move(handshake_done_)) asio::post(executor, [done, why] { done(Error{why}); });
  if (auto done = std::move(read_done_)) asio::post(executor, [done, why] { done(Error{why}); });
  read_into_ = {};
  auto waiters = std::move(write_waiters_);
  handshake_done_ = nullptr;
  read_done_ = nullptr;
  write_waiters_.clear();
  for (auto& [mark, cb] : waiters)
    if (cb) asio::post(executor, [cb = std::move(cb), why] { cb(Error{why}); });
}

}  // namespace annexswarm
