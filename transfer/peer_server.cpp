#include "transfer/peer_server.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>

#include "protocol/crypto.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
using namespace peer;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t kManifestCacheBytes = 64u << 20;  // of chunk hashes (a 1 TiB object: 32 MiB)
constexpr std::size_t kManifestCacheEntries = 256;
constexpr auto kHashJobUnwanted = 20s;  // nobody asked for the manifest this long: stop hashing
constexpr auto kMaxAcceptDelay = 2s;

std::int64_t now_ns() { return std::chrono::steady_clock::now().time_since_epoch().count(); }
}  // namespace

// An open object file, closed when the last read of it is done (a read may still be on
// the reader thread when its GET is cancelled). Not in the anonymous namespace: a
// Session member holds one.
struct PeerServerOpenFile {
  int fd = -1;
  explicit PeerServerOpenFile(int f) : fd(f) {}
  ~PeerServerOpenFile() {
    if (fd >= 0) ::close(fd);
  }
  PeerServerOpenFile(const PeerServerOpenFile&) = delete;
  PeerServerOpenFile& operator=(const PeerServerOpenFile&) = delete;
};
using OpenFile = PeerServerOpenFile;

Result<FullManifest> hash_manifest(const std::filesystem::path& file, std::atomic<std::uint64_t>* hashed,
                                   const std::function<bool()>& keep_going) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open " + file.string() + ": " + std::strerror(errno)};
  FullManifest out;
  Bytes buf(kManifestChunk);
  while (true) {
    if (keep_going && !keep_going()) {
      ::close(fd);
      return Error{"nobody waits for the manifest any more"};
    }
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
    out.hashes.insert(out.hashes.end(), digest.begin(), digest.end());
    out.size += filled;
    if (hashed) hashed->store(out.size);
    if (filled < buf.size()) break;
  }
  ::close(fd);
  auto root = crypto::sha256(out.hashes);
  out.root.assign(root.begin(), root.end());
  return out;
}

// One hashing job, shared by every request for the same file version.
struct PeerServer::HashJob {
  std::uint64_t size = 0;
  std::atomic<std::uint64_t> hashed{0};
  std::atomic<std::int64_t> last_asked{0};  // steady clock, ns
  std::vector<ManifestFn> waiters;          // io thread only
};

class PeerServer::Session : public std::enable_shared_from_this<Session> {
public:
  Session(PeerServer& server, std::shared_ptr<PeerLink> link, std::string from, std::string remote_ip,
          std::string account)
      : server_(server),
        link_(std::move(link)),
        from_(std::move(from)),
        remote_ip_(std::move(remote_ip)),
        account_(std::move(account)),
        timer_(server.io_),
        pacing_(server.io_),
        peer_upload_(server.limits_.upload_rate_per_peer),
        open_links_(server.open_links_),
        lifetime_(server.lifetime_) {}
  // May run after the server is gone (handlers still held by the io_context): it touches
  // only what it shares.
  ~Session() {
    if (member_) --*open_links_;
    if (unauthenticated_ && !lifetime_.expired()) server_.leave_unauthenticated(account_);
  }

  void start() {
    auto self = shared_from_this();
    // TLS, HELLO and PROOF within the deadline, or the connection goes.
    timer_.expires_after(server_.limits_.handshake_deadline);
    timer_.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->member_ || self->closed_) return;
      self->timed_out_ = true;
      self->link_->close();
    });
    link_->establish(std::nullopt, [self](Result<PeerLink::Established> r) {
      if (self->lifetime_.expired()) return;
      self->timer_.cancel();
      self->unauthenticated_ = false;
      self->server_.leave_unauthenticated(self->account_);
      if (!r) {
        if (self->timed_out_) {
          ++self->server_.stats_.handshake_timeouts;
          return self->server_.refused(self->from_ + ": no TLS handshake and membership proof within " +
                                       std::to_string(self->server_.limits_.handshake_deadline.count() / 1000) + " s");
        }
        self->server_.refused(self->from_ + ": " + r.error());
        return;  // PeerLink told the peer why and closed
      }
      if (self->server_.closed_) return self->link_->close();
      self->peer_ = r->peer;
      self->swarm_ = r->swarm;
      if (*self->open_links_ >= self->server_.limits_.max_peers) self->server_.evict_an_idle_member();
      if (*self->open_links_ >= self->server_.limits_.max_peers) {
        // A member, but one too many: say so, and when to come back.
        ++self->server_.stats_.busy_refusals;
        auto retry = static_cast<std::uint32_t>(self->server_.limits_.busy_retry.count());
        self->server_.refused(self->from_ + ": over the cap of " + std::to_string(self->server_.limits_.max_peers) +
                              " peers (told to come back)");
        self->closed_ = true;
        self->link_->send(ErrorFrame{0, ErrorCode::Busy,
                                     "node busy: serving " + std::to_string(*self->open_links_) + " members, its limit",
                                     retry},
                          [self](Result<bool>) { self->link_->close(); });
        return;
      }
      self->member_ = true;
      self->last_request_ = Clock::now();
      ++*self->open_links_;
      auto& peak = self->server_.stats_.links_open_peak;
      peak = std::max(peak, *self->open_links_);
      if (self->server_.on_member_ && !self->remote_ip_.empty())
        self->server_.on_member_(self->remote_ip_, self->link_->local_endpoint());
      self->last_frame_ = Clock::now();
      self->watch_idle();
      self->receive_loop();
    });
  }

  // A member whose link has carried nothing but keep-alives for `quiet` (a download that
  // finished, a pool keeping its link): it may give its slot to a member waiting for one.
  Clock::time_point last_request() const { return last_request_; }
  bool idle_member(Clock::time_point now, Clock::duration quiet) const {
    bool busy = current_ || !queue_.empty() || dialing_back_ || takes_ > 0 || tunnelling_ || reserved_;
    return member_ && !closed_ && !busy && now - last_request_ >= quiet;
  }
  // Gives the slot up at once (the count drops now, not when the last handler lets go), and
  // tells the peer why: it dials again when it next needs this node.
  void evict() {
    if (member_) --*open_links_;
    member_ = false;
    closed_ = true;
    timer_.cancel();
    auto self = shared_from_this();
    link_->send(ErrorFrame{0, ErrorCode::Busy, "closing an idle link to serve another member", 0},
                [self](Result<bool>) { self->link_->close(); });
    // A peer that never reads would keep that write, and the link, for ever.
    timer_.expires_after(std::chrono::seconds(5));
    timer_.async_wait([self](const std::error_code& ec) {
      if (!ec) self->link_->close();
    });
  }

  void close() {
    auto tunnel = std::move(tunnel_);
    closed_ = true;
    timer_.cancel();
    if (tunnel) tunnel->close("the node is stopping");  // it tells the peer, then closes the link
    else link_->close();  // also one closed_ already, whose last write may never finish
  }

private:
  using Request = std::variant<Have, Manifest, Get, Remove, Prove>;

  void watch_idle() {
    timer_.expires_after(server_.limits_.idle_deadline / 4);
    timer_.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed_ || self->lifetime_.expired()) return;
      // (A tunnel keeps its own idle deadline.)
      bool busy = self->current_ || !self->queue_.empty() || self->dialing_back_ || self->takes_ > 0 || self->tunnelling_;
      if (!busy && Clock::now() - self->last_frame_ >= self->server_.limits_.idle_deadline) return self->close();
      self->watch_idle();
    });
  }

  // Frames are read all the time, so a CANCEL or PING is seen while a GET is being
  // served; requests queue up and are served one after another. A peer whose replies
  // pile up unsent is not read from until they drain.
  void receive_loop() {
    auto self = shared_from_this();
    if (link_->unsent_bytes() > server_.limits_.max_unsent_bytes) {
      return link_->when_drained([self] {
        if (!self->closed_ && !self->lifetime_.expired()) self->receive_loop();
      });
    }
    link_->receive([self](Result<Frame> frame) {
      if (self->closed_ || self->lifetime_.expired()) return;
      if (!frame) {
        // Garbage or a dead link: say so if we still can, then hang up.
        self->closed_ = true;
        self->link_->send(ErrorFrame{0, ErrorCode::BadFrame, frame.error(), 0},
                          [self](Result<bool>) { self->link_->close(); });
        return;
      }
      self->last_frame_ = Clock::now();
      if (!std::holds_alternative<Ping>(*frame) && !std::holds_alternative<Pong>(*frame)) self->last_request_ = self->last_frame_;
      std::visit([self](auto& f) { self->on_frame(f); }, *frame);
      if (!self->closed_ && !self->tunnelling_) self->receive_loop();
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
  void on_frame(const Prove& f) { enqueue(f); }
  // Beside the queue too: the holder fetches the share before it answers.
  void on_frame(const Take& f) {
    constexpr std::size_t kMaxTakes = 4;
    if (!server_.take_) return link_->send(ErrorFrame{f.id, ErrorCode::Unsupported, "this node keeps no shares", 0});
    if (takes_ >= kMaxTakes) return link_->send(ErrorFrame{f.id, ErrorCode::Busy, "too many TAKEs at once", 2000});
    ++takes_;
    auto self = shared_from_this();
    server_.take_(PeerServer::ShareTake{peer_, swarm_, f}, [self, id = f.id](std::variant<std::uint64_t, Refusal> r) {
      --self->takes_;
      if (self->closed_) return;
      if (auto* refusal = std::get_if<Refusal>(&r)) return self->link_->send(ErrorFrame{id, refusal->code, refusal->why, 0});
      self->link_->send(HaveReply{id, {std::get<std::uint64_t>(r)}});
    });
  }
  // Answered beside the queue: it waits on a dial that may take seconds.
  void on_frame(const DialBack& f) {
    auto self = shared_from_this();
    auto answer = [self, id = f.id](bool ok, std::string reason) {
      self->dialing_back_ = false;
      if (!self->closed_) self->link_->send(DialBackReply{id, ok, self->remote_ip_, std::move(reason)});
    };
    if (dialing_back_) return link_->send(ErrorFrame{f.id, ErrorCode::Busy, "one DIAL_BACK at a time", 1000});
    if (!server_.dial_back_) return answer(false, "this node does not dial back");
    auto host = f.host.empty() ? remote_ip_ : f.host;
    dialing_back_ = true;
    server_.dial_back_(peer_, swarm_, remote_ip_, host, f.port, [answer](Result<bool> r) {
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
    if (r) reserved_ = true;  // the link is how circuits reach that node: never idle
    link_->send(ReserveReply{f.id, r.ok(), r ? *r : 0u, r ? std::string() : r.error()});
  }
  void on_frame(const Connect& f) {
    if (!server_.relay_.connect) return link_->send(ConnectReply{f.id, false, {}, "this node is not a relay"});
    auto r = server_.relay_.connect(peer_, f.target);
    link_->send(ConnectReply{f.id, r.ok(), r ? *r : Bytes{}, r ? std::string() : r.error()});
  }
  bool swarms_public(std::size_t swarm) const { return swarm < server_.swarms_.size() && server_.swarms_[swarm].is_public(); }

  // OPEN: from now on the link carries that one stream, or nothing.
  void on_frame(const Open& f) {
    tunnelling_ = true;
    auto self = shared_from_this();
    auto refuse = [self, id = f.id, service = f.service](const std::string& why) {
      ++self->server_.stats_.tunnels_refused;
      if (self->server_.on_refused_)
        self->server_.on_refused_("member " + self->peer_.hex() + " (" + self->from_ + "): a tunnel to '" + service +
                                  "': " + why);
      self->closed_ = true;
      self->link_->send(OpenReply{id, false, why}, [self](Result<bool>) { self->link_->close(); });
    };
    if (!server_.open_) return refuse("this node exposes no services");
    if (swarms_public(swarm_)) return refuse("no tunnels in the public swarm");
    if (current_ || !queue_.empty() || takes_ > 0 || dialing_back_)
      return refuse("an OPEN must be the only request on its link");
    std::size_t open = 0;
    for (const auto& [member, n] : server_.tunnels_) open += n;
    if (open >= server_.limits_.max_tunnels)
      return refuse("this node carries " + std::to_string(open) + " tunnels, its limit");
    if (server_.tunnels_[peer_] >= server_.limits_.max_tunnels_per_member)
      return refuse("you have " + std::to_string(server_.tunnels_[peer_]) + " tunnels open here, the limit");
    ++server_.tunnels_[peer_];
    ++server_.stats_.tunnels_open;
    auto released = std::make_shared<bool>(false);
    auto release = [self, released, lifetime = lifetime_] {
      if (*released || lifetime.expired()) return;
      *released = true;
      --self->server_.stats_.tunnels_open;
      if (--self->server_.tunnels_[self->peer_] == 0) self->server_.tunnels_.erase(self->peer_);
    };
    server_.open_(OpenRequest{peer_, swarm_, f.service},
                  [self, id = f.id, refuse, release, lifetime = lifetime_](Result<Tunnel::LocalSocket> socket) {
                    if (lifetime.expired()) return;
                    if (self->closed_) return release();
                    if (!socket) {
                      release();
                      return refuse(socket.error());
                    }
                    self->link_->send(OpenReply{id, true, ""});
                    self->tunnel_ = std::make_shared<Tunnel>(
                        self->server_.io_, self->link_, std::move(*socket), self->server_.limits_.tunnel_idle,
                        [self, release](std::optional<std::string>) {
                          release();
                          self->closed_ = true;
                        });
                    self->tunnel_->start();
                  });
  }

  void on_frame(const Hello&) { link_->send(ErrorFrame{0, ErrorCode::BadFrame, "unexpected HELLO", 0}); }
  void on_frame(const Proof&) { link_->send(ErrorFrame{0, ErrorCode::BadFrame, "unexpected PROOF", 0}); }
  template <class Reply>
  void on_frame(const Reply&) {
    link_->send(ErrorFrame{0, ErrorCode::Unsupported, "not a request", 0});
  }

  void enqueue(Request request) {
    auto id = std::visit([](auto& q) { return q.id; }, request);
    if (queue_.size() >= kMaxQueuedRequests)
      return link_->send(ErrorFrame{id, ErrorCode::Busy, "too many requests queued; wait for answers", 1000});
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
      if (ok && !self->lifetime_.expired()) self->serve_next();
    });
  }

  void serve(const Have& f) {
    HaveReply out{f.id, {}};
    for (const auto& k : f.keys) {
      auto key = AnnexKey::parse(k).value();  // validated by the decoder
      auto path = server_.locate_(key, f.repo);
      struct stat st;
      out.sizes.push_back(path && ::stat(path->c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) + 1 : 0);
      if (server_.claim_everything_for_test_) out.sizes.back() = key.content_size().value_or(1) + 1;
    }
    reply(out);
  }

  // The asked ranges of our copy, read on the reader thread, hashed under the nonce.
  void serve(const Prove& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key, f.repo);
    if (server_.claim_everything_for_test_) return reply(ProveReply{f.id, key.content_size().value_or(0), Bytes(32, 0x5a)});
    if (!path) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "not held here", 0});
    auto self = shared_from_this();
    asio::post(server_.reader_, [self, path = *path, f, lifetime = lifetime_] {
      OpenFile file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      std::optional<Frame> out;
      if (file.fd < 0 || ::fstat(file.fd, &st) != 0) {
        out = ErrorFrame{f.id, ErrorCode::NotPresent, "cannot open the object", 0};
      } else {
        auto size = static_cast<std::uint64_t>(st.st_size);
        Bytes bytes;
        for (std::size_t i = 0; i < f.offsets.size() && !out; ++i) {
          if (f.offsets[i] >= size || f.lengths[i] > size - f.offsets[i]) {
            out = ErrorFrame{f.id, ErrorCode::BadRange, "range outside the object (size " + std::to_string(size) + ")", 0};
            break;
          }
          auto at = bytes.size();
          bytes.resize(at + f.lengths[i]);
          if (::pread(file.fd, bytes.data() + at, f.lengths[i], static_cast<off_t>(f.offsets[i])) !=
              static_cast<ssize_t>(f.lengths[i]))
            out = ErrorFrame{f.id, ErrorCode::Internal, "cannot read the object", 0};
        }
        if (!out) out = ProveReply{f.id, size, prove_mac(f.nonce, f.key, bytes)};
      }
      if (lifetime.expired()) return;
      asio::post(self->server_.io_, [self, out = std::move(*out), lifetime] {
        if (lifetime.expired() || self->closed_) return;
        self->reply(out);
      });
    });
  }

  static Frame manifest_page(std::uint32_t id, std::uint32_t page, const FullManifest& full) {
    if (page >= page_count(full.size, kManifestChunk))
      return ErrorFrame{id, ErrorCode::BadRange, "no manifest page " + std::to_string(page), 0};
    ManifestReply out{id, kManifestChunk, full.size, full.root, page, {}};
    auto chunks = full.hashes.size() / 32;
    auto first = std::min<std::size_t>(std::size_t{page} * kManifestPageChunks, chunks);
    auto last = std::min<std::size_t>(first + kManifestPageChunks, chunks);
    out.hashes.assign(full.hashes.begin() + static_cast<std::ptrdiff_t>(first * 32),
                      full.hashes.begin() + static_cast<std::ptrdiff_t>(last * 32));
    return out;
  }

  // Not held, but being fetched here: what is in already.
  std::optional<PartialObject> partial(const AnnexKey& key) const {
    return server_.partial_ ? server_.partial_(key) : std::nullopt;
  }
  static constexpr std::uint32_t kPartialRetryMs = 250;

  void serve(const Manifest& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key, "");
    if (!path) {
      auto part = partial(key);
      if (!part) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "not held here", 0});
      if (!part->manifest)
        return reply(ErrorFrame{f.id, ErrorCode::Busy, "fetching it; its manifest is not here yet", kPartialRetryMs});
      return reply(manifest_page(f.id, f.page, *part->manifest));
    }
    auto self = shared_from_this();
    auto answered = std::make_shared<bool>(false);
    server_.manifest_of(
        *path,
        [self, answered, id = f.id, page = f.page](Result<std::shared_ptr<const FullManifest>> m) {
          if (*answered || self->closed_) return;
          *answered = true;
          if (!m) return self->reply(ErrorFrame{id, ErrorCode::Internal, m.error(), 0});
          self->reply(manifest_page(id, page, **m));
        },
        [self, answered, id = f.id](std::uint64_t hashed, std::uint64_t size) {
          // A large object, still being hashed: come back later, and see how far it got.
          if (*answered || self->closed_) return;
          *answered = true;
          auto percent = size ? hashed * 100 / size : 0;
          // Come back about when it will be done (hashing runs near 1 GB/s), 0.1 to 2 s.
          auto left_ms = (size - std::min(size, hashed)) / 1'000'000;
          auto retry = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(left_ms, 100, 2000));
          self->reply(ErrorFrame{id, ErrorCode::Busy, "hashing the object: " + std::to_string(percent) + "%", retry});
        });
  }

  void serve(const Remove& f) {
    if (!server_.remove_) return reply(ErrorFrame{f.id, ErrorCode::Unsupported, "this node keeps no swarm stores", 0});
    auto removed = server_.remove_(StoreRemoval{peer_, swarm_, f.key, f.store, f.capability});
    if (auto* refusal = std::get_if<Refusal>(&removed)) return reply(ErrorFrame{f.id, refusal->code, refusal->why, 0});
    reply(HaveReply{f.id, {0}});
  }

  void serve(const Get& f) {
    auto key = AnnexKey::parse(f.key).value();
    auto path = server_.locate_(key, "");
    bool partial_file = false;
    if (!path) {
      auto part = partial(key);
      if (!part) return reply(ErrorFrame{f.id, ErrorCode::NotPresent, "not held here", 0});
      if (!part->manifest || !part->has(f.offset, f.length))
        return reply(ErrorFrame{f.id, ErrorCode::Busy, "fetching it; that part is not here yet", kPartialRetryMs});
      path = part->path;
      partial_file = true;
    }
    // The file of this session's last GET, still open: a download asks for one chunk after
    // another of the same object, and each need not open it again.
    // (Not a partial file: one removed and made again under its name is another file.)
    if (opened_ && opened_path_ == *path && !partial_file) return start_get(opened_, opened_size_, f);
    // Opening and reading happen on the reader thread; the io thread only encrypts and sends.
    auto self = shared_from_this();
    asio::post(server_.reader_, [self, path = *path, f, partial_file, lifetime = lifetime_] {
      auto file = std::make_shared<OpenFile>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      bool ok = file->fd >= 0 && ::fstat(file->fd, &st) == 0;
      auto size = static_cast<std::uint64_t>(st.st_size);
      if (lifetime.expired()) return;
      asio::post(self->server_.io_, [self, file, ok, size, f, path, partial_file, lifetime] {
        if (lifetime.expired() || self->closed_) return;
        // A partial file just finished moves into the store: ask again in a moment.
        if (!ok && partial_file)
          return self->reply(ErrorFrame{f.id, ErrorCode::Busy, "just finished fetching it", kPartialRetryMs});
        if (!ok) return self->reply(ErrorFrame{f.id, ErrorCode::NotPresent, "cannot open the object", 0});
        self->opened_ = file;
        self->opened_path_ = path;
        self->opened_size_ = size;
        self->start_get(file, size, f);
      });
    });
  }

  void start_get(std::shared_ptr<OpenFile> file, std::uint64_t size, const Get& f) {
    if (f.offset >= size || f.length > size - f.offset)
      return reply(ErrorFrame{f.id, ErrorCode::BadRange, "range outside the object (size " + std::to_string(size) + ")", 0});
    file_ = std::move(file);
    ++generation_;
    get_id_ = f.id;
    next_read_ = f.offset;
    end_ = f.offset + f.length;
    read_ahead();
  }

  // Two buffers: one frame is sent from one while the next is read into the other. The
  // payload is read where the frame wants it, right after room for its header, so the
  // bytes are never copied into a frame.
  void read_ahead() {
    if (reading_ || ready_ || next_read_ >= end_ || !file_) return;
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxDataBytes, end_ - next_read_));
    auto& buffer = buffers_[next_buffer_];
    if (buffer.empty()) buffer.resize(kMaxDataHeader + kMaxDataBytes);
    reading_ = true;
    auto self = shared_from_this();
    auto offset = next_read_;
    asio::post(server_.reader_, [self, file = file_, generation = generation_, offset, n,
                                 payload = buffer.data() + kMaxDataHeader, lifetime = lifetime_] {
      ssize_t got = ::pread(file->fd, payload, n, static_cast<off_t>(offset));
      if (lifetime.expired()) return;
      asio::post(self->server_.io_, [self, got, n, offset, generation, lifetime] {
        if (lifetime.expired()) return;
        self->reading_ = false;
        // A read for a GET that ended meanwhile: its buffer is simply free again.
        if (generation != self->generation_) return self->read_ahead();
        self->on_read(got == static_cast<ssize_t>(n), offset, n);
      });
    });
  }

  void on_read(bool ok, std::uint64_t offset, std::size_t n) {
    if (closed_ || !file_) return;
    if (!ok) return finish_get(ErrorFrame{get_id_, ErrorCode::Internal, "the object changed while being read", 0});
    auto* payload = buffers_[next_buffer_].data() + kMaxDataHeader;
    if (server_.corrupt_for_test_)
      for (std::size_t i = 0; i < n; ++i) payload[i] ^= 0x5a;
    auto header = encode_data_header(get_id_, offset, offset + n == end_, n);
    auto* start = payload - header.size();
    std::copy(header.begin(), header.end(), start);
    ready_ = ByteView(start, header.size() + n);
    ready_payload_ = n;
    ready_last_ = offset + n == end_;
    next_buffer_ ^= 1;
    next_read_ = offset + n;
    if (!sending_) send_ready();
  }

  void send_ready() {
    if (!ready_ || closed_) return;
    auto frame = *ready_;
    bool last = ready_last_;
    ready_.reset();
    auto n = ready_payload_;
    server_.stats_.bytes_served += n;
    served_ += n;
    if (server_.hang_up_after_for_test_ && served_ > server_.hang_up_after_for_test_) return close();
    sending_ = true;
    read_ahead();  // the next frame reads while this one goes out
    auto now = RateLimiter::Clock::now();
    auto wait = std::max(server_.upload_.take(frame.size(), now), peer_upload_.take(frame.size(), now));
    auto self = shared_from_this();
    auto transmit = [self, frame, last] {
      self->link_->send_encoded(frame, [self, last](Result<bool> ok) {
        if (self->lifetime_.expired()) return;
        self->sending_ = false;
        if (!ok) return;
        if (last || self->cancel_current_) return self->finish_get(std::nullopt);
        if (self->ready_) return self->send_ready();
        self->read_ahead();
      });
    };
    if (wait <= RateLimiter::Clock::duration::zero()) return transmit();
    // Over the upload rate: hold this frame back until its bytes are paid for.
    ++server_.stats_.frames_paced;
    pacing_.expires_after(wait);
    pacing_.async_wait([transmit](const std::error_code&) { transmit(); });
  }

  void finish_get(std::optional<Frame> error) {
    file_.reset();
    ++generation_;
    // A read still under way lands in a buffer nobody sends from.
    ready_.reset();
    next_read_ = end_ = 0;
    if (error) return reply(*error);
    serve_next();
  }

  PeerServer& server_;
  std::shared_ptr<PeerLink> link_;
  std::string from_;       // the peer's address, for logs
  std::string remote_ip_;  // the address the peer is seen at (IPv4 without the v6 mapping)
  std::string account_;    // whose unauthenticated allowance it uses
  NodeId peer_;
  std::size_t swarm_ = 0;
  bool member_ = false;
  bool unauthenticated_ = true;
  bool timed_out_ = false;
  bool dialing_back_ = false;
  std::size_t takes_ = 0;  // TAKEs being served
  bool tunnelling_ = false;  // an OPEN came: the link is a tunnel's (or about to close)
  std::shared_ptr<Tunnel> tunnel_;
  std::uint64_t served_ = 0;
  asio::steady_timer timer_;  // the handshake deadline, then the idle watch
  asio::steady_timer pacing_;
  RateLimiter peer_upload_;
  Clock::time_point last_frame_{};
  Clock::time_point last_request_{};  // a frame other than PING and PONG
  bool reserved_ = false;             // holds a relay reservation
  // The GET being served.
  std::shared_ptr<OpenFile> file_;
  // The file the last GET opened, kept open for the next GET of the same object.
  std::shared_ptr<OpenFile> opened_;
  std::filesystem::path opened_path_;
  std::uint64_t opened_size_ = 0;
  std::uint64_t generation_ = 0;  // which GET a read in flight belongs to
  std::uint32_t get_id_ = 0;
  std::uint64_t next_read_ = 0, end_ = 0;
  std::array<Bytes, 2> buffers_;
  std::size_t next_buffer_ = 0;
  bool reading_ = false, sending_ = false;
  std::optional<ByteView> ready_;  // a frame read and not yet sent
  std::size_t ready_payload_ = 0;
  bool ready_last_ = false;
  std::deque<Request> queue_;
  std::optional<std::uint32_t> current_;  // id of the request being served
  bool cancel_current_ = false;
  bool closed_ = false;
  std::shared_ptr<std::size_t> open_links_;
  std::weak_ptr<int> lifetime_;
};

void PeerServer::manifest_of(const std::filesystem::path& path, ManifestFn done,
                             std::function<void(std::uint64_t, std::uint64_t)> progress) {
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
  auto& job = jobs_[key];
  bool fresh = !job;
  if (fresh) {
    job = std::make_shared<HashJob>();
    job->size = key.size;
  }
  job->last_asked = now_ns();
  job->waiters.push_back(std::move(done));
  if (key.size > limits_.large_object && progress) {
    // Hashing takes a while: the asker comes back for it.
    auto hashed = job->hashed.load();
    progress(hashed, key.size);
  }
  if (!fresh) return;
  // Hashing a large object takes a while: off the io thread, once for every asker, and
  // only while somebody still asks.
  asio::post(hasher_, [this, alive = std::weak_ptr<int>(lifetime_), path, key, job] {
    auto wanted = [&job, alive] {
      return !alive.expired() &&
             std::chrono::nanoseconds(now_ns() - job->last_asked.load()) < std::chrono::nanoseconds(kHashJobUnwanted);
    };
    auto manifest = hash_manifest(path, &job->hashed, wanted);
    if (alive.expired()) return;
    asio::post(io_, [this, alive, key, job, manifest = std::move(manifest)]() mutable {
      if (alive.expired()) return;
      jobs_.erase(key);
      Result<std::shared_ptr<const FullManifest>> result(Error{manifest ? "" : manifest.error()});
      if (manifest) {
        ++stats_.manifests_hashed;
        auto shared = std::make_shared<const FullManifest>(std::move(*manifest));
        manifest_bytes_ += shared->hashes.size();
        manifests_.emplace_front(key, shared);
        while (manifests_.size() > kManifestCacheEntries || manifest_bytes_ > kManifestCacheBytes) {
          if (manifests_.size() == 1) break;
          manifest_bytes_ -= manifests_.back().second->hashes.size();
          manifests_.pop_back();
        }
        result = shared;
      }
      for (auto& waiter : job->waiters) waiter(result);
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
      accept_backoff_(io),
      upload_(limits.upload_rate),
      park_timer_(io) {}

PeerServer::~PeerServer() {
  close();
  lifetime_.reset();
  hasher_.join();
  reader_.join();
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
  accept_backoff_.cancel();
  park_timer_.cancel();
  parked_.clear();  // their sockets close
  parked_by_address_.clear();
  for (auto& weak : sessions_)
    if (auto session = weak.lock()) session->close();
  sessions_.clear();
}

PeerServerStats PeerServer::stats() const {
  auto out = stats_;
  out.links_open = *open_links_;
  out.unauthenticated = unauthenticated_total_;
  out.parked = parked_.size();
  return out;
}

void PeerServer::refused(const std::string& why) {
  ++stats_.links_refused;
  if (on_refused_) on_refused_(why);
}

void PeerServer::leave_unauthenticated(const std::string& address) {
  if (unauthenticated_total_) --unauthenticated_total_;
  auto it = unauthenticated_.find(address);
  if (it != unauthenticated_.end() && --it->second == 0) unauthenticated_.erase(it);
  if (parked_.empty() || unpark_posted_) return;
  // Not from inside the session that is leaving: posted.
  unpark_posted_ = true;
  asio::post(io_, [this, alive = std::weak_ptr<int>(lifetime_)] {
    if (alive.expired()) return;
    unpark_posted_ = false;
    unpark();
  });
}

void PeerServer::evict_an_idle_member() {
  // The one quiet the longest goes; one that asked for something in the last 5 s stays (a
  // downloader polling a large object's hashing comes back within 2 s and a round trip).
  auto now = std::chrono::steady_clock::now();
  std::shared_ptr<Session> quietest;
  for (auto& weak : sessions_)
    if (auto s = weak.lock(); s && s->idle_member(now, std::chrono::seconds(5)))
      if (!quietest || s->last_request() < quietest->last_request()) quietest = s;
  if (!quietest) return;
  ++stats_.idle_evictions;
  quietest->evict();
}

bool PeerServer::has_slot(const std::string& address) const {
  if (unauthenticated_total_ >= limits_.max_unauthenticated) return false;
  auto it = unauthenticated_.find(address);
  return it == unauthenticated_.end() || it->second < limits_.max_unauthenticated_per_address;
}

void PeerServer::unpark() {
  if (closed_) return;
  auto now = std::chrono::steady_clock::now();
  for (auto it = parked_.begin(); it != parked_.end() && unauthenticated_total_ < limits_.max_unauthenticated;) {
    if (it->until <= now || !has_slot(it->address)) {
      ++it;  // the expired go at expire_parked; one address at its cap lets others pass
      continue;
    }
    auto p = std::move(*it);
    it = parked_.erase(it);
    if (--parked_by_address_[p.address] == 0) parked_by_address_.erase(p.address);
    admit(std::move(p.socket), p.from, p.address);
  }
}

void PeerServer::expire_parked() {
  park_timer_armed_ = false;
  auto now = std::chrono::steady_clock::now();
  while (!parked_.empty() && parked_.front().until <= now) {
    auto& p = parked_.front();
    ++stats_.parked_timeouts;
    refused(p.from + ": waited " + std::to_string(limits_.handshake_deadline.count() / 1000) +
            " s for a handshake slot (too many connections still proving themselves)");
    if (--parked_by_address_[p.address] == 0) parked_by_address_.erase(p.address);
    parked_.pop_front();  // closes it
  }
  if (parked_.empty()) return;
  park_timer_armed_ = true;
  park_timer_.expires_at(parked_.front().until);
  park_timer_.async_wait([this, alive = std::weak_ptr<int>(lifetime_)](const std::error_code& ec) {
    if (!ec && !alive.expired() && !closed_) expire_parked();
  });
}

void PeerServer::accept_later() {
  // Out of file descriptors (or memory): accepting again at once would spin. Wait, longer
  // each time, and let closing links give some back.
  accept_delay_ = std::min<std::chrono::milliseconds>(
      accept_delay_ == std::chrono::milliseconds(0) ? std::chrono::milliseconds(100) : accept_delay_ * 2, kMaxAcceptDelay);
  accept_backoff_.expires_after(accept_delay_);
  accept_backoff_.async_wait([this, alive = std::weak_ptr<int>(lifetime_)](const std::error_code& ec) {
    if (!ec && !alive.expired() && !closed_) accept();
  });
}

void PeerServer::accept() {
  acceptor_.async_accept([this, alive = std::weak_ptr<int>(lifetime_)](const std::error_code& ec,
                                                                        asio::ip::tcp::socket socket) {
    if (alive.expired() || closed_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      ++stats_.accept_errors;
      refused(std::string("accepting a connection failed: ") + ec.message());
      return accept_later();
    }
    accept_delay_ = std::chrono::milliseconds(0);
    ++stats_.links_accepted;
    std::error_code ignored;
    auto remote = socket.remote_endpoint(ignored);
    auto address = unmapped(remote.address()).to_string();
    auto from = host_port(address, remote.port());
    // Straight in only when nobody waits; else behind those waiting (unpark below takes
    // them in order, this one too if a slot is free).
    if (has_slot(address) && parked_.empty()) {
      admit(std::move(socket), from, address);
      return accept();
    }
    auto& waiting = parked_by_address_[address];
    if ((parked_.size() >= limits_.max_parked || waiting >= limits_.max_parked_per_address) && has_slot(address)) {
      if (waiting == 0) parked_by_address_.erase(address);
      admit(std::move(socket), from, address);
      return accept();
    }
    if (parked_.size() >= limits_.max_parked || waiting >= limits_.max_parked_per_address) {
      if (waiting == 0) parked_by_address_.erase(address);
      refused(from + ": too many connections still proving themselves (" + std::to_string(unauthenticated_total_) +
              " in all, " + std::to_string(parked_.size()) + " waiting)");
      socket.close(ignored);
      return accept();
    }
    // Over the handshake caps: it waits its turn (a crowd of downloaders, not an attack,
    // is the usual cause), unread, until a slot frees or its deadline passes.
    ++waiting;
    ++stats_.parked_total;
    parked_.push_back(Parked{std::move(socket), from, address,
                             std::chrono::steady_clock::now() + limits_.handshake_deadline});
    if (!park_timer_armed_) expire_parked();
    unpark();
    accept();
  });
}

void PeerServer::admit(asio::ip::tcp::socket socket, const std::string& from, const std::string& address) {
  ++unauthenticated_[address];
  ++unauthenticated_total_;
  if (relay_.join) {
    // A relay looks at the first bytes: a circuit's token, or a TLS handshake.
    auto deadline = std::make_shared<asio::steady_timer>(io_, limits_.handshake_deadline);
    auto shared = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
    deadline->async_wait([this, alive = std::weak_ptr<int>(lifetime_), shared, address](const std::error_code& tec) {
      std::error_code ignored;
      if (tec || alive.expired()) return;
      shared->close(ignored);
      leave_unauthenticated(address);
      ++stats_.handshake_timeouts;
    });
    classify(shared, from, address, deadline);
  } else {
    serve_tls(std::move(socket), from, address);
  }
}

void PeerServer::serve_tls(asio::ip::tcp::socket socket, const std::string& from, const std::string& address) {
  auto stream = std::make_shared<TlsStream>(std::move(socket), credentials_, TlsStream::Side::Server);
  auto link = std::make_shared<PeerLink>(stream, swarms_, Role::Listener);
  auto session = std::make_shared<Session>(*this, link, from, address, address);
  std::erase_if(sessions_, [](const std::weak_ptr<Session>& w) { return w.expired(); });
  sessions_.push_back(session);
  session->start();
}

void PeerServer::adopt(asio::ip::tcp::socket socket, const std::string& from) {
  if (closed_) return;
  ++stats_.links_accepted;
  // Our end of a relay circuit: the relay already limits circuits; it still has to prove
  // itself within the deadline like any connection.
  ++unauthenticated_["relay circuit"];
  ++unauthenticated_total_;
  auto stream = std::make_shared<TlsStream>(std::move(socket), credentials_, TlsStream::Side::Server);
  auto link = std::make_shared<PeerLink>(stream, swarms_, Role::Listener);
  auto session = std::make_shared<Session>(*this, link, from, "", "relay circuit");
  sessions_.push_back(session);
  session->start();
}

void PeerServer::classify(std::shared_ptr<asio::ip::tcp::socket> socket, std::string from, std::string address,
                          std::shared_ptr<asio::steady_timer> deadline) {
  std::weak_ptr<int> alive = lifetime_;
  socket->async_wait(asio::ip::tcp::socket::wait_read, [this, alive, socket, from, address, deadline](
                                                           const std::error_code& ec) {
    if (alive.expired() || closed_) return;
    if (ec) {
      // Closed by the deadline (which counted it out), or failed: count it out here unless
      // the deadline did (the timer may die with this handler, never firing).
      if (deadline->cancel() > 0) leave_unauthenticated(address);
      return;
    }
    std::array<std::uint8_t, 4> head{};
    std::error_code pec;
    auto n = socket->receive(asio::buffer(head), asio::socket_base::message_peek, pec);
    if (pec || n == 0) {
      if (deadline->cancel() > 0) leave_unauthenticated(address);
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
      if (deadline->cancel() == 0) return;  // the deadline fired meanwhile
      return serve_tls(std::move(*socket), from, address);  // the session takes over the count

    }
    auto preamble = std::make_shared<Bytes>(kCircuitMagic.size() + kCircuitToken);
    asio::async_read(*socket, asio::buffer(*preamble), [this, alive, socket, preamble, deadline, address](
                                                           const std::error_code& rec, std::size_t) {
      if (alive.expired() || closed_) return;
      if (deadline->cancel() == 0) return;  // the deadline fired and counted it out
      leave_unauthenticated(address);  // a failed read, or the relay's own limits take over
      if (rec) return;
      relay_.join(std::move(*socket), Bytes(preamble->begin() + kCircuitMagic.size(), preamble->end()));
    });
  });
}

}  // namespace annexswarm
