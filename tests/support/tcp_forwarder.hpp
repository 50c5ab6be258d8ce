#pragma once
// A port forward in a test (what a home router's forwarded port or `docker run -p` does):
// connections to 127.0.0.1:port() are passed to 127.0.0.1:target, both ways, on a thread
// of its own. The target may be set after it listens (the daemon behind it picks its own
// port); connections and bytes are counted.
#include <asio.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <thread>

namespace annexswarm::test {

class TcpForwarder {
public:
  TcpForwarder() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TcpForwarder() {
    io_.stop();
    thread_.join();
  }
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;

  std::uint16_t port() const { return port_; }
  void forward_to(std::uint16_t target) { target_ = target; }
  std::size_t connections() const { return connections_; }
  std::uint64_t bytes() const { return bytes_; }

private:
  struct Pair {
    explicit Pair(asio::io_context& io) : inside(io), outside(io) {}
    asio::ip::tcp::socket inside, outside;
    std::array<char, 64 * 1024> up{}, down{};
  };

  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      accept();
      if (target_ == 0) return;  // nothing behind the forward yet: the dialler sees a close
      ++connections_;
      auto pair = std::make_shared<Pair>(io_);
      pair->outside = std::move(socket);
      pair->inside.async_connect({asio::ip::make_address("127.0.0.1"), target_.load()}, [this, pair](std::error_code ec) {
        if (ec) return;
        pump(pair, pair->outside, pair->inside, pair->up);
        pump(pair, pair->inside, pair->outside, pair->down);
      });
    });
  }
  template <std::size_t N>
  void pump(std::shared_ptr<Pair> pair, asio::ip::tcp::socket& from, asio::ip::tcp::socket& to, std::array<char, N>& buffer) {
    from.async_read_some(asio::buffer(buffer), [this, pair, &from, &to, &buffer](std::error_code ec, std::size_t n) {
      if (ec) {
        std::error_code ignored;
        to.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        return;
      }
      bytes_ += n;
      asio::async_write(to, asio::buffer(buffer.data(), n), [this, pair, &from, &to, &buffer](std::error_code ec, std::size_t) {
        if (ec) {
          std::error_code ignored;
          from.close(ignored);
          return;
        }
        pump(pair, from, to, buffer);
      });
    });
  }

  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = acceptor_.local_endpoint().port();
  std::atomic<std::uint16_t> target_{0};
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::thread thread_;
};

}  // namespace annexswarm::test
