#pragma once
// A TLS 1.3 stream over a TCP socket, driven by Asio without blocking: GnuTLS works on
// the non-blocking socket and, when it would block, we wait for readiness on the
// io_context. Both sides present their OpenDHT certificate; the peer's node id is its
// certificate's public key id.
#include <gnutls/gnutls.h>
#include <opendht/crypto.h>

#include <asio/ip/tcp.hpp>
#include <deque>
#include <functional>
#include <memory>
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

class TlsStream : public std::enable_shared_from_this<TlsStream> {
public:
  enum class Side { Client, Server };
  TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<TlsCredentials> credentials, Side side);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Completes the handshake; yields the peer's node id.
  void handshake(std::function<void(Result<NodeId>)> done);
  // RFC 5705 exporter value of this session (after the handshake).
  Result<Bytes> exporter(std::string_view label, std::size_t size);
  // Sends all of `data` (queued behind earlier writes).
  void write(Bytes data, std::function<void(Result<bool>)> done);
  // Reads what is available (at least one byte); an error on close or failure.
  void read(std::function<void(Result<Bytes>)> done);
  void close();
  asio::ip::tcp::socket& socket() { return socket_; }

private:
  template <class Op, class Done>
  void retry(Op op, Done done);
  void write_next();

  asio::ip::tcp::socket socket_;
  std::shared_ptr<TlsCredentials> credentials_;
  gnutls_session_t session_ = nullptr;
  // A deque: the front buffer must stay put while GnuTLS waits to finish sending it.
  std::deque<std::pair<Bytes, std::function<void(Result<bool>)>>> outbox_;
  std::size_t written_ = 0;
  bool writing_ = false;
  bool closed_ = false;
};

}  // namespace annexswarm
