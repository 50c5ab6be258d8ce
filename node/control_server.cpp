#include "node/control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <deque>

#include "node/log.hpp"

namespace annexswarm {
using asio::local::stream_protocol;

class ControlSession : public std::enable_shared_from_this<ControlSession> {
public:
  ControlSession(stream_protocol::socket socket, const ControlHandler& handler)
      : socket_(std::move(socket)), handler_(handler), buffer_(kMaxControlLine) {}

  void start() { read_next(); }

  void send(const nlohmann::json& message, bool final) {
    if (closed_) return;
    outbox_.push_back(message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    if (final) {
      busy_ = false;
      read_next();
    }
    if (outbox_.size() == 1) write_next();
  }

private:
  void read_next() {
    if (reading_ || busy_ || closed_) return;
    reading_ = true;
    asio::async_read_until(socket_, buffer_, '\n',
                           [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                             self->reading_ = false;
                             self->on_line(ec, n);
                           });
  }

  void on_line(const std::error_code& ec, std::size_t n) {
    if (ec) {
      if (ec == asio::error::not_found) {
        // The line outgrew the buffer: answer, then hang up.
        send({{"ok", false}, {"code", "bad-request"}, {"error", "request line too long"}}, false);
      }
      closed_after_write_ = true;
      if (outbox_.empty()) close();
      return;
    }
    std::string line(asio::buffers_begin(buffer_.data()), asio::buffers_begin(buffer_.data()) + n);
    buffer_.consume(n);
    nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
    busy_ = true;
    ControlResponder responder(shared_from_this());
    if (request.is_discarded() || !request.is_object() || !request.contains("op") ||
        !request["op"].is_string()) {
      responder.fail("bad-request", "request is not a JSON object with an \"op\"");
      return;
    }
    try {
      handler_(request, responder);
    } catch (const std::exception& e) {
      responder.fail("internal", e.what());
    }
  }

  void write_next() {
    asio::async_write(socket_, asio::buffer(outbox_.front()),
                      [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                        self->outbox_.pop_front();
                        if (ec) return self->close();
                        if (!self->outbox_.empty()) return self->write_next();
                        if (self->closed_after_write_) self->close();
                      });
  }

  void close() {
    closed_ = true;
    std::error_code ignored;
    socket_.close(ignored);
  }

  stream_protocol::socket socket_;
  const ControlHandler& handler_;
  asio::streambuf buffer_;
  std::deque<std::string> outbox_;
  bool reading_ = false;
  bool busy_ = false;
  bool closed_ = false;
  bool closed_after_write_ = false;
};

void ControlResponder::event(nlohmann::json event) const { session_->send(event, false); }
void ControlResponder::reply(nlohmann::json reply) const {
  if (!reply.contains("ok")) reply["ok"] = true;
  session_->send(reply, true);
}
void ControlResponder::fail(std::string_view code, std::string_view message) const {
  session_->send({{"ok", false}, {"code", code}, {"error", message}}, true);
}

ControlServer::ControlServer(asio::io_context& io, ControlHandler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io) {}

Result<bool> ControlServer::listen(const std::filesystem::path& socket_path) {
  if (socket_path.string().size() >= sizeof(sockaddr_un::sun_path))
    return Error{"control socket path " + socket_path.string() + " is too long; use a shorter --state-dir"};
  // The caller holds the state dir lock, so a socket file left here is stale.
  ::unlink(socket_path.c_str());
  std::error_code ec;
  mode_t old_mask = ::umask(0177);  // the socket is born 0600
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(socket_path.string()), ec);
  ::umask(old_mask);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return Error{"cannot create control socket " + socket_path.string() + ": " + ec.message()};
  ::chmod(socket_path.c_str(), 0600);
  path_ = socket_path;
  accept();
  return true;
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const std::error_code& ec, stream_protocol::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted) log::warn("control socket accept: {}", ec.message());
      if (!acceptor_.is_open()) return;
    } else {
      std::make_shared<ControlSession>(std::move(socket), handler_)->start();
    }
    accept();
  });
}

void ControlServer::close() {
  std::error_code ignored;
  acceptor_.close(ignored);
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace annexswarm
