#include "node/control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <deque>

#include "node/log.hpp"

namespace annexswarm {
using asio::local::stream_protocol;

namespace {
constexpr std::size_t kMaxPendingLines = 16;  // requests sent ahead of their turn
}

class ControlSession : public std::enable_shared_from_this<ControlSession> {
public:
  ControlSession(stream_protocol::socket socket, const ControlHandler& handler, asio::io_context& io)
      : socket_(std::move(socket)), handler_(handler), buffer_(kMaxControlLine), heartbeat_(io) {}

  void start() { read_next(); }

  void send(const nlohmann::json& message, bool final) {
    if (closed_) return;
    outbox_.push_back(message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    if (outbox_.size() == 1) write_next();
    if (final) {
      busy_ = false;
      heartbeat_.cancel();
      gone_.clear();
      serve_next();
    }
  }
  void on_gone(std::function<void()> fn) {
    if (closed_) return fn();
    gone_.push_back(std::move(fn));
  }
  void hand_over(const nlohmann::json& reply, ControlResponder::Taker take) {
    // The client is gone: the taker still gets the (closed) socket, and ends what it opened.
    if (closed_) return take(std::move(socket_), {});
    taker_ = std::move(take);
    send(reply, false);
    busy_ = false;
    heartbeat_.cancel();
    gone_.clear();
  }

private:
  // Reading never stops, even while a request is being served: a client that hangs up
  // is noticed at once, and a long request it started can be called off.
  void read_next() {
    if (closed_) return;
    asio::async_read_until(socket_, buffer_, '\n', [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
      self->on_line(ec, n);
    });
  }

  void on_line(const std::error_code& ec, std::size_t n) {
    if (closed_) return;
    if (taker_) {
      // The read ended (cancelled, or bytes the client sent ahead): the connection goes once
      // the reply is out.
      read_ended_ = true;
      if (outbox_.empty()) give_away();
      return;
    }
    if (ec) {
      if (ec == asio::error::not_found) {
        // The line outgrew the buffer: answer, then hang up.
        send({{"ok", false}, {"code", "bad-request"}, {"error", "request line too long"}}, false);
        closed_after_write_ = true;
        if (outbox_.empty()) close();
        return;
      }
      return caller_gone();
    }
    std::string line(asio::buffers_begin(buffer_.data()), asio::buffers_begin(buffer_.data()) + n);
    buffer_.consume(n);
    if (pending_.size() >= kMaxPendingLines) {
      send({{"ok", false}, {"code", "bad-request"}, {"error", "too many requests sent ahead of their answers"}}, false);
      closed_after_write_ = true;
      return;
    }
    pending_.push_back(std::move(line));
    serve_next();
    read_next();
  }

  void serve_next() {
    if (busy_ || pending_.empty() || closed_) return;
    auto line = std::move(pending_.front());
    pending_.pop_front();
    nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
    busy_ = true;
    beat();
    ControlResponder responder(shared_from_this());
    if (request.is_discarded() || !request.is_object() || !request.contains("op") || !request["op"].is_string())
      return responder.fail("bad-request", "request is not a JSON object with an \"op\"");
    try {
      handler_(request, responder);
    } catch (const std::exception& e) {
      responder.fail("internal", e.what());
    }
  }

  // While a request runs, the client hears that the node is alive every few seconds, so
  // it can tell a long transfer from a node that stopped answering.
  void beat() {
    heartbeat_.expires_after(kControlHeartbeat);
    heartbeat_.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->busy_ || self->closed_) return;
      self->send({{"event", "alive"}}, false);
      self->beat();
    });
  }

  void caller_gone() {
    auto gone = std::move(gone_);
    gone_.clear();
    close();
    for (auto& fn : gone) fn();
  }

  void write_next() {
    asio::async_write(socket_, asio::buffer(outbox_.front()),
                      [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                        if (self->outbox_.empty()) return;
                        self->outbox_.pop_front();
                        if (ec) return self->caller_gone();
                        if (!self->outbox_.empty()) return self->write_next();
                        if (self->closed_after_write_) self->close();
                        // The last reply is out: stop reading lines (the read in flight ends,
                        // and give_away() runs from its handler).
                        if (self->taker_) {
                          if (self->read_ended_) return self->give_away();
                          std::error_code ignored;
                          self->socket_.cancel(ignored);
                        }
                      });
  }

  // The connection leaves this session: whatever is buffered past the request line goes
  // with it.
  void give_away() {
    auto take = std::move(taker_);
    taker_ = nullptr;
    std::string ahead(asio::buffers_begin(buffer_.data()), asio::buffers_end(buffer_.data()));
    buffer_.consume(buffer_.size());
    closed_ = true;
    heartbeat_.cancel();
    take(std::move(socket_), std::move(ahead));
  }

  void close() {
    closed_ = true;
    busy_ = false;
    heartbeat_.cancel();
    outbox_.clear();
    std::error_code ignored;
    socket_.close(ignored);
  }

  stream_protocol::socket socket_;
  const ControlHandler& handler_;
  asio::streambuf buffer_;
  asio::steady_timer heartbeat_;
  std::deque<std::string> outbox_;
  std::deque<std::string> pending_;
  std::vector<std::function<void()>> gone_;
  bool busy_ = false;
  bool closed_ = false;
  bool closed_after_write_ = false;
  ControlResponder::Taker taker_;  // set: the connection is being handed over
  bool read_ended_ = false;        // ... and the read in flight has ended
};

void ControlResponder::event(nlohmann::json event) const { session_->send(event, false); }
void ControlResponder::reply(nlohmann::json reply) const {
  if (!reply.contains("ok")) reply["ok"] = true;
  session_->send(reply, true);
}
void ControlResponder::fail(std::string_view code, std::string_view message) const {
  session_->send({{"ok", false}, {"code", code}, {"error", message}}, true);
}
void ControlResponder::on_gone(std::function<void()> fn) const { session_->on_gone(std::move(fn)); }
void ControlResponder::hand_over(nlohmann::json reply, Taker take) const {
  if (!reply.contains("ok")) reply["ok"] = true;
  session_->hand_over(reply, std::move(take));
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
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      log::warn("control socket accept: {}", ec.message());
      // Out of file descriptors, say: try again shortly instead of spinning.
      auto retry = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(200));
      retry->async_wait([this, retry](const std::error_code& tec) {
        if (!tec && acceptor_.is_open()) accept();
      });
      return;
    }
    std::make_shared<ControlSession>(std::move(socket), handler_, io_)->start();
    accept();
  });
}

void ControlServer::close() {
  std::error_code ignored;
  acceptor_.close(ignored);
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace annexswarm
