#include "transfer/fetcher.hpp"

#include <asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace annexswarm {
using namespace peer;
using namespace std::chrono_literals;

Fetcher::Fetcher(asio::io_context& io, asio::any_io_executor worker, PeerPool& pool, std::vector<SwarmToken> swarms,
                 AnnexKey key, std::vector<FetchSource> sources, FetchOptions options, ProgressFn progress, DoneFn done)
    : io_(io),
      worker_(std::move(worker)),
      pool_(pool),
      swarms_(std::move(swarms)),
      key_(std::move(key)),
      sources_(std::move(sources)),
      options_(std::move(options)),
      progress_(std::move(progress)),
      done_(std::move(done)),
      timer_(io),
      pacing_(io) {
  part_path_ = options_.destination;
  part_path_ += ".part";
}

void Fetcher::start() {
  if (!key_.checkable() && !options_.allow_unverified)
    return end("key " + key_.str() + " carries no hash, so its content cannot be verified; "
               "allow unverified downloads to fetch it anyway");
  if (sources_.size() > options_.max_sources) sources_.resize(options_.max_sources);
  std::vector<std::string> names;
  for (const auto& s : sources_) names.push_back(s.address.node.hex().substr(0, 8));
  auto limits = options_.limits;
  limits.window = options_.window;
  // Out of order, chunks wait in the partial file: at most this many ahead of the prefix
  // before the one holding it back is asked of another peer too.
  if (options_.in_order && limits.head_lag == 0) limits.head_lag = 8;
  std::uint64_t seed = 1;
  for (auto b : key_.str()) seed = seed * 131 + static_cast<unsigned char>(b);
  machine_.emplace(std::move(names), key_.str(), key_.content_size(), limits, seed);
  if (key_.is_share())
    if (auto root = from_hex(key_.share_root_hex())) machine_->pin_root(std::move(*root));
  channels_.assign(sources_.size(), nullptr);
  epochs_.assign(sources_.size(), 0);
  paths_.assign(sources_.size(), "");
  feed(M::Start{});
}

void Fetcher::cancel(const std::string& why) {
  if (ended_) return;
  end("cancelled: " + why);
}

void Fetcher::feed(const M::Event& event) {
  if (ended_ || !machine_) return;
  auto actions = machine_->handle(event, M::Clock::now());
  for (auto& a : actions) {
    if (ended_) return;
    apply(a);
  }
  if (!ended_) arm_timer();
}

void Fetcher::arm_timer() {
  auto at = machine_->next_deadline();
  if (!at) return;
  if (timer_at_ && *timer_at_ <= *at && *timer_at_ > M::Clock::now()) return;  // an earlier one is armed
  timer_at_ = *at;
  timer_.expires_at(*at);
  timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (ec) return;
    self->timer_at_.reset();
    self->feed(M::Tick{});
    self->report_progress(true);
  });
}

void Fetcher::apply(M::Action& action) {
  std::visit(
      [this](auto& a) {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, M::Dial>) {
          dial(a.peer);
        } else if constexpr (std::is_same_v<A, M::RequestPage>) {
          send_page(a);
        } else if constexpr (std::is_same_v<A, M::RequestChunk>) {
          send_chunk(a);
        } else if constexpr (std::is_same_v<A, M::Cancel>) {
          auto it = pending_.find(a.request);
          if (it == pending_.end()) return;
          if (it->second.channel) it->second.channel->cancel(it->second.channel_id);
          pending_.erase(it);
          std::erase_if(paced_, [&](const M::RequestChunk& r) { return r.request == a.request; });
        } else if constexpr (std::is_same_v<A, M::Drop>) {
          ++epochs_[a.peer];  // whatever that link still says is not heard
          for (auto it = pending_.begin(); it != pending_.end();) {
            if (it->second.peer == a.peer) {
              if (it->second.channel) it->second.channel->cancel(it->second.channel_id);
              it = pending_.erase(it);
            } else {
              ++it;
            }
          }
          std::erase_if(paced_, [&](const M::RequestChunk& r) { return r.peer == a.peer; });
          // A peer that sent bad data is cut off for everyone, not only this download.
          if (a.bad_data && channels_[a.peer]) pool_.forget(sources_[a.peer].address.node, a.why);
          channels_[a.peer].reset();
        } else if constexpr (std::is_same_v<A, M::OpenSink>) {
          open_sink(std::move(a.manifest));
        } else if constexpr (std::is_same_v<A, M::CheckObject>) {
          check_object();
        } else if constexpr (std::is_same_v<A, M::Finish>) {
          finish();
        } else if constexpr (std::is_same_v<A, M::Fail>) {
          end(a.why);
        }
      },
      action);
}

void Fetcher::dial(M::PeerId peer) {
  auto epoch = ++epochs_[peer];
  const auto& s = sources_[peer];
  pool_.channel(s.address, swarms_[s.swarm],
                [self = shared_from_this(), peer, epoch](Result<std::shared_ptr<PeerChannel>> channel) {
                  if (self->ended_ || self->epochs_[peer] != epoch) return;
                  if (!channel) return self->feed(M::ConnectFailed{peer, channel.error()});
                  self->channels_[peer] = *channel;
                  self->paths_[peer] = (*channel)->remote_address();
                  self->feed(M::Connected{peer});
                });
}

void Fetcher::link_failed(M::PeerId peer, std::uint64_t epoch, const std::string& why) {
  if (ended_ || epochs_[peer] != epoch) return;
  ++epochs_[peer];  // one report per link
  // The path that broke (an endpoint, or a relay that went away or cut the circuit) is
  // tried last when the machine dials this peer again.
  if (auto& channel = channels_[peer]) {
    if (auto retry = channel->busy_retry()) {
      channel.reset();
      return feed(M::PeerBusy{peer, why, *retry});
    }
    auto remote = channel->remote_endpoint();
    auto& address = sources_[peer].address;
    std::stable_partition(address.endpoints.begin(), address.endpoints.end(),
                          [&](const asio::ip::tcp::endpoint& e) { return e != remote; });
    std::stable_partition(address.relays.begin(), address.relays.end(), [&](const RelayRoute& r) {
      return std::find(r.endpoints.begin(), r.endpoints.end(), remote) == r.endpoints.end();
    });
    channel.reset();
  }
  feed(M::LinkLost{peer, why});
}

void Fetcher::send_page(const M::RequestPage& r) {
  auto& channel = channels_[r.peer];
  if (!channel) return;
  auto epoch = epochs_[r.peer];
  Pending p{r.peer, channel, 0, 0, 0, nullptr};
  auto id = r.request;
  pending_[id] = p;
  pending_[id].channel_id = channel->request(Manifest{0, key_.str(), r.page},
                                             [self = shared_from_this(), id, epoch](Result<FrameView>& frame) {
                                               return self->on_answer(id, epoch, frame);
                                             });
}

void Fetcher::send_chunk(const M::RequestChunk& r) {
  if (options_.download_limit && (pacing_armed_ || !paced_.empty())) {
    paced_.push_back(r);  // behind others already held back
    return;
  }
  auto& channel = channels_[r.peer];
  if (!channel) return;
  auto epoch = epochs_[r.peer];
  auto buffer = std::make_shared<Bytes>();
  buffer->reserve(static_cast<std::size_t>(r.length));
  auto id = r.request;
  pending_[id] = Pending{r.peer, channel, 0, r.chunk, r.offset, buffer};
  pending_[id].channel_id = channel->request(Get{0, key_.str(), r.offset, r.length},
                                             [self = shared_from_this(), id, epoch](Result<FrameView>& frame) {
                                               return self->on_answer(id, epoch, frame);
                                             });
  if (!options_.download_limit) return;
  auto wait = options_.download_limit->take(static_cast<std::size_t>(r.length), RateLimiter::Clock::now());
  if (wait <= RateLimiter::Clock::duration::zero()) return;
  // Over the download rate: no new request goes out until these bytes are paid for.
  pacing_armed_ = true;
  pacing_.expires_after(wait);
  pacing_.async_wait([self = shared_from_this()](const std::error_code&) {
    self->pacing_armed_ = false;
    auto held = std::move(self->paced_);
    self->paced_.clear();
    for (std::size_t i = 0; i < held.size() && !self->ended_; ++i) {
      self->send_chunk(held[i]);
      if (self->pacing_armed_) {  // paced again: the rest waits its turn
        self->paced_.insert(self->paced_.end(), held.begin() + static_cast<std::ptrdiff_t>(i) + 1, held.end());
        break;
      }
    }
  });
}

bool Fetcher::on_answer(M::RequestId request, std::uint64_t epoch, Result<FrameView>& frame) {
  auto it = pending_.find(request);
  if (ended_ || it == pending_.end()) return false;
  auto peer = it->second.peer;
  if (epochs_[peer] != epoch) return false;
  if (!frame) {
    link_failed(peer, epoch, frame.error());
    return false;
  }
  if (auto* data = std::get_if<DataView>(&*frame)) {
    auto& p = it->second;
    if (!p.buffer) {
      feed(M::Refused{peer, request, ErrorCode::BadFrame, "sent DATA for a manifest request", 0});
      return false;
    }
    if (data->offset != p.offset + p.buffer->size())
      return link_failed(peer, epoch, "sent data out of order"), false;
    if (p.buffer->size() + data->bytes.size() > p.buffer->capacity())
      return link_failed(peer, epoch, "sent more than was asked for"), false;
    p.buffer->insert(p.buffer->end(), data->bytes.begin(), data->bytes.end());
    if (!data->fin) {
      feed(M::DataSeen{peer});
      return true;
    }
    auto buffer = std::move(p.buffer);
    auto chunk = p.chunk;
    pending_.erase(it);
    feed(M::ChunkArrived{peer, request});
    check_chunk(peer, std::move(buffer), chunk);
    return false;
  }
  auto& f = std::get<Frame>(*frame);
  pending_.erase(it);
  if (auto* m = std::get_if<ManifestReply>(&f)) {
    feed(M::PageArrived{peer, request, std::move(*m)});
  } else if (auto* e = std::get_if<ErrorFrame>(&f)) {
    feed(M::Refused{peer, request, e->code, e->message, e->retry_after_ms});
  } else {
    feed(M::Refused{peer, request, ErrorCode::BadFrame, std::string("answered with ") + frame_name(f), 0});
  }
  return false;
}

void Fetcher::open_sink(ObjectManifest manifest) {
  // Opening checks the chunks already in the partial file (a restart, or another copy
  // tried before), which reads it: on the worker. The old sink goes there too.
  auto generation = ++sink_generation_;
  auto old = std::move(sink_);
  // Chunks are checked against the manifest only when the object's digest fails (see
  // ChunkSink::open): hashing every byte twice would make a fast download CPU-bound.
  asio::post(worker_, [self = shared_from_this(), old = std::move(old), generation, part = part_path_,
                       manifest = std::move(manifest), only = options_.only_chunks, in_order = options_.in_order,
                       destination = options_.destination,
                       hash = key_.verifiable() ? key_.hash() : HashAlgorithm::None]() mutable {
    old.reset();
    // In order, every chunk is checked before it goes into the destination, which its
    // reader (git-annex) hashes as it grows.
    auto sink = ChunkSink::open(part, std::move(manifest), hash, in_order);
    if (sink && !only.empty())
      if (auto left = (*sink)->leave_out(only); !left) sink = Error{left.error()};
    if (sink && in_order)
      if (auto m = (*sink)->mirror_to(destination); !m) sink = Error{m.error()};
    auto& io = self->io_;
    asio::post(io, [self = std::move(self), generation, sink = std::move(sink)]() mutable {
      if (self->ended_ || generation != self->sink_generation_) return;
      if (!sink) return self->feed(M::LocalFailure{sink.error()});
      self->sink_ = std::move(*sink);
      if (self->options_.on_sink) self->options_.on_sink(self->sink_->manifest(), self->sink_->done());
      self->feed(M::SinkOpened{self->sink_->done(), self->sink_->resumed_bytes()});
    });
  });
}

void Fetcher::check_chunk(M::PeerId peer, std::shared_ptr<Bytes> buffer, std::size_t chunk) {
  // The request kept its window slot until now, and keeps it until the worker is done, so
  // memory stays bounded by the window however fast the network is.
  asio::post(worker_, [self = shared_from_this(), sink = sink_, generation = sink_generation_, peer, chunk,
                       buffer = std::move(buffer)]() mutable {
    auto verdict = sink->accept(chunk, *buffer);
    auto bytes = buffer->size();
    auto prefix = sink->prefix_bytes();
    buffer.reset();
    auto& io = self->io_;
    asio::post(io, [self = std::move(self), generation, peer, chunk, verdict = std::move(verdict), bytes, prefix] {
      if (generation != self->sink_generation_) return;
      if (!verdict) return self->feed(M::LocalFailure{verdict.error()});
      self->prefix_bytes_ = std::max(self->prefix_bytes_, prefix);
      // Written (and, for a key without a digest, checked against the manifest): whoever
      // reads the partial file may take it now. Told before the machine hears of it, which
      // may end the download.
      if (*verdict == ChunkSink::Verdict::Stored && self->options_.on_chunk && !self->ended_)
        self->options_.on_chunk(chunk);
      self->feed(M::ChunkChecked{peer, chunk, *verdict, bytes});
      self->report_progress(false);
    });
  });
}

void Fetcher::check_object() {
  asio::post(worker_, [self = shared_from_this(), sink = sink_, generation = sink_generation_,
                       expected = key_.digest_hex(), in_order = options_.in_order]() mutable {
    auto digest = sink->finish();
    // A digest that does not match: which chunks are bad, if any (none: the manifest is).
    Result<std::vector<std::size_t>> bad = std::vector<std::size_t>{};
    if (digest && !digest->empty() && *digest != expected) bad = sink->recheck();
    // In order: the destination holds the object now; the partial file goes.
    if (digest && (digest->empty() || *digest == expected) && in_order)
      if (auto m = sink->finish_mirror(); !m) digest = Error{m.error()};
    auto& io = self->io_;
    asio::post(io, [self = std::move(self), generation, digest = std::move(digest), expected, bad = std::move(bad)] {
      if (self->ended_ || generation != self->sink_generation_) return;
      if (!digest) return self->feed(M::LocalFailure{digest.error()});
      if (!bad) return self->feed(M::LocalFailure{bad.error()});
      bool matches = digest->empty() || *digest == expected;
      if (!matches && !bad->empty() && self->options_.on_chunks_bad) self->options_.on_chunks_bad(*bad);
      self->feed(M::ObjectChecked{matches, *bad});
    });
  });
}

void Fetcher::finish() {
  if (!options_.in_order) {
    if (::rename(part_path_.c_str(), options_.destination.c_str()) != 0)
      return end("cannot move the object into " + options_.destination.string() + ": " + std::strerror(errno));
    ::unlink((part_path_.string() + ".chunks").c_str());
  }
  if (machine_) prefix_bytes_ = machine_->progress(M::Clock::now()).bytes_total;
  report_progress(true);
  end(std::nullopt);
}

void Fetcher::report_progress(bool force) {
  if (!progress_ || !machine_) return;
  auto now = M::Clock::now();
  if (!force && now - last_progress_ < 200ms) return;
  last_progress_ = now;
  auto p = machine_->progress(now);
  progress_({p.bytes_done, p.bytes_total, prefix_bytes_, p.peers, p.waiting, p.waiting_why,
             std::chrono::duration<double>(p.stalled).count()});
}

FetchReport Fetcher::report() const {
  FetchReport out;
  if (!machine_) return out;
  const auto& r = machine_->report();
  for (std::size_t p = 0; p < r.size(); ++p) {
    auto node = sources_[p].address.node.hex();
    if (r[p].bytes) out.bytes_from[node] = r[p].bytes;
    if (!r[p].dropped.empty()) out.dropped[node] = r[p].dropped;
    if (!r[p].redialled.empty()) out.redialled[node] = r[p].redialled;
    if (r[p].bad_data) out.bad_data.insert(node);
    if (r[p].absent) out.absent.insert(node);
    if (!paths_[p].empty()) out.paths[node] = paths_[p];
  }
  out.bytes_fetched = machine_->bytes_fetched();
  out.bytes_resumed = machine_->bytes_resumed();
  return out;
}

void Fetcher::end(std::optional<std::string> error) {
  if (ended_) return;
  ended_ = true;
  timer_.cancel();
  pacing_.cancel();
  for (auto& [id, p] : pending_)
    if (p.channel) p.channel->cancel(p.channel_id);
  pending_.clear();
  channels_.clear();
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(error), report());
}

}  // namespace annexswarm
