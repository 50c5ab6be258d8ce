#pragma once
// A TLS 1.3 stream over a TCP socket, driven by Asio without blocking. GnuTLS never
// touches the socket: its transport reads from a buffer that async_read_some fills and
// writes into a buffer that async_write drains, so readiness is Asio's business alone.
// Both sides present a certificate for their OpenDHT key; the peer's node id is its
// certificate's public key id.
#include <gnutls/gnutls.h>
#include <opendht/crypto.h>

#include <asio/ip/tcp.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "protocol/bytes.hpp"
#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

// The node's certificate and key, loaded once into GnuTLS.
class TlsCredentials {
public:
  static Result<std::shared_ptr<TlsCredentials>> from_identity(const dht::crypto::Identity& identity);
  ~TlsCredentials();
  gnutls_certificate_credentials_t get() const { return creds_; }

private:
  TlsCredentials() = default;
  gnutls_certificate_credentials_t creds_ = nullptr;
};

// AES-GCM first: GnuTLS's ChaCha20 is 10x slower on these machines.
inline constexpr const char* kTlsPriorities =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM";

// The most plaintext one TLS record carries.
inline constexpr std::size_t kTlsRecordBytes = 16 * 1024;

// An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d; this gives a.b.c.d.
asio::ip::address unmapped(const asio::ip::address& address);

class TlsStream : public std::enable_shared_from_this<TlsStream> {
public:
  enum class Side { Client, Server };
  TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<TlsCredentials> credentials, Side side);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  // "host:port" of the other end, as connected (empty once closed).
  std::string remote_address() const;
  asio::ip::tcp::endpoint remote_endpoint() const;
  asio::ip::tcp::endpoint local_endpoint() const;
  TlsStream& operator=(const TlsStream&) = delete;

  // Completes the handshake; yields the peer's node id.
  void handshake(std::function<void(Result<NodeId>)> done);
  // RFC 5705 exporter value of this session (after the handshake).
  Result<Bytes> exporter(std::string_view label, std::size_t size);
  // Encrypts `data` now (the caller may reuse it on return); `done` runs once its bytes
  // have reached the socket.
  void write(ByteView data, std::function<void(Result<bool>)> done);
  // Decrypts what is available (at least one byte) straight into `into`, which must stay
  // valid until `done`; yields how many bytes it wrote, or an error on close or failure.
  void read(MutableByteView into, std::function<void(Result<std::size_t>)> done);
  // Encrypted bytes handed to the socket and not yet taken by it.
  std::uint64_t unsent_bytes() const { return pushed_ - written_; }
  // Runs `fn` once everything written so far has reached the socket (or the stream failed).
  void when_drained(std::function<void()> fn);
  void close();

private:
  static ssize_t pull(gnutls_transport_ptr_t self, void* data, std::size_t size);
  static ssize_t push(gnutls_transport_ptr_t self, const void* data, std::size_t size);
  void fill();        // one async_read_some into inbound_, unless one is running
  void flush();       // one async_write of outbound_, unless one is running
  void progress();    // retry what waited for input
  void drive_handshake();
  void drive_read();
  void fail_all(const std::string& why);

  asio::ip::tcp::socket socket_;
  std::shared_ptr<TlsCredentials> credentials_;
  gnutls_session_t session_ = nullptr;

  // Ciphertext from the socket, [in_begin_, in_end_) not yet taken by GnuTLS.
  Bytes inbound_;
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  bool reading_ = false;
  Bytes outbound_;
  Bytes sending_;
  bool sending_now_ = false;
  std::uint64_t pushed_ = 0;   // ciphertext bytes produced
  std::uint64_t written_ = 0;  // ciphertext bytes on the socket
  std::deque<std::pair<std::uint64_t, std::function<void(Result<bool>)>>> write_waiters_;

  std::function<void(Result<NodeId>)> handshake_done_;
  MutableByteView read_into_;
  std::function<void(Result<std::size_t>)> read_done_;
  std::optional<std::string> error_;
  bool closed_ = false;
};

}  // namespace annexswarm
