#include "transfer/fetcher.hpp"

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace annexswarm {
using namespace peer;

Fetcher::Fetcher(asio::io_context& io, asio::any_io_executor worker, std::shared_ptr<PeerDialer> dialer,
                 std::vector<SwarmToken> swarms, AnnexKey key, std::vector<FetchSource> sources, FetchOptions options,
                 ProgressFn progress, DoneFn done)
    : io_(io),
      worker_(std::move(worker)),
      dialer_(std::move(dialer)),
      swarms_(std::move(swarms)),
      key_(std::move(key)),
      sources_(std::move(sources)),
      options_(std::move(options)),
      progress_(std::move(progress)),
      done_(std::move(done)),
      pacing_(io) {
  part_path_ = options_.destination;
  part_path_ += ".part";
}

void Fetcher::start() {
  if (!key_.verifiable() && !options_.allow_unverified)
    return fail("key " + key_.str() + " carries no hash, so its content cannot be verified; "
                "allow unverified downloads to fetch it anyway");
  if (sources_.empty()) return fail("no provider of " + key_.str() + " is known");
  if (sources_.size() > options_.max_sources) sources_.resize(options_.max_sources);
  dials_pending_ = sources_.size();
  redials_.assign(sources_.size(), 0);
  redialing_.assign(sources_.size(), false);
  for (std::size_t i = 0; i < sources_.size(); ++i) dial(i);
}

void Fetcher::dial(std::size_t source) {
  const auto& s = sources_[source];
  dialer_->dial(s.address, swarms_[s.swarm], [self = shared_from_this(), source](Result<std::shared_ptr<PeerLink>> link) {
    self->on_link(source, std::move(link));
  });
}

void Fetcher::on_link(std::size_t source, Result<std::shared_ptr<PeerLink>> link) {
  if (finished_) {
    if (link) (*link)->close();
    return;
  }
  bool again = redialing_[source];
  if (again) {
    redialing_[source] = false;
    --redials_pending_;
  }
  if (!link) {
    auto& dropped = report_.dropped[sources_[source].address.node.hex()];
    dropped = again ? dropped + "; dialling again failed: " + link.error() : link.error();
    --dials_pending_;
    if (again) return pump();
    return maybe_choose_manifest();
  }
  if (again) {
    auto node = sources_[source].address.node.hex();
    report_.redialled[node] = report_.dropped[node];
    report_.dropped.erase(node);
  }
  report_.paths[sources_[source].address.node.hex()] = (*link)->remote_address();
  std::size_t index = peers_.size();
  peers_.push_back(Peer{sources_[source].address.node, *link, std::nullopt, 0, true, source});
  (*link)->send(Manifest{0, key_.str()});
  receive_loop(index);
}

void Fetcher::receive_loop(std::size_t peer) {
  auto self = shared_from_this();
  peers_[peer].link->receive_view([self, peer](Result<FrameView> frame) {
    if (self->finished_ || self->completing_ || !self->peers_[peer].alive) return;
    if (!frame) return self->link_lost(peer, frame.error());
    if (auto* data = std::get_if<DataView>(&*frame))
      self->on_data(peer, *data);
    else
      self->on_frame(peer, std::move(std::get<Frame>(*frame)));
    if (!self->finished_ && self->peers_[peer].alive) self->receive_loop(peer);
  });
}

void Fetcher::on_data(std::size_t peer, const DataView& d) {
  if (cancelled_.count(d.id)) {
    if (d.fin) cancelled_.erase(d.id);
    return;  // sent before our CANCEL arrived
  }
  auto it = requests_.find(d.id);
  if (it == requests_.end() || it->second.peer != peer || !it->second.buffer)
    return drop(peer, "sent data nobody asked for");
  auto& buffer = *it->second.buffer;
  std::uint64_t expected = static_cast<std::uint64_t>(it->second.chunk) * manifest_->chunk + buffer.size();
  if (d.offset != expected) return drop(peer, "sent data out of order");
  if (buffer.size() + d.bytes.size() > buffer.capacity()) return drop(peer, "sent more than was asked for");
  buffer.insert(buffer.end(), d.bytes.begin(), d.bytes.end());
  if (d.fin) chunk_arrived(d.id);
}

void Fetcher::on_frame(std::size_t peer, Frame frame) {
  auto& p = peers_[peer];
  if (auto* m = std::get_if<ManifestReply>(&frame)) {
    if (p.manifest) return drop(peer, "sent a second manifest");
    p.manifest = ObjectManifest{m->object_size, m->chunk_size, std::move(m->hashes)};
    --dials_pending_;
    if (manifest_) {  // a peer dialled again after the choice
      if (*p.manifest != *manifest_) return drop(peer, "its manifest disagrees with the other peers'");
      return pump();
    }
    return maybe_choose_manifest();
  }
  if (auto* e = std::get_if<ErrorFrame>(&frame)) {
    if (cancelled_.erase(e->id)) return;  // a cancelled request may end either way
    if (!p.manifest) --dials_pending_;
    drop(peer, "refused: " + e->message);
    return maybe_choose_manifest();
  }
  drop(peer, "sent an unexpected frame");
}

void Fetcher::maybe_choose_manifest() {
  if (finished_ || manifest_ || dials_pending_ > 0) return;
  // The manifest most peers agree on; a size in the key must match, and the chunk
  // hashes must cover the size.
  std::map<ObjectManifest, std::size_t> votes;
  for (const auto& p : peers_) {
    if (!p.alive || !p.manifest || (key_.content_size() && p.manifest->size != *key_.content_size())) continue;
    const auto& m = *p.manifest;
    if (m.chunk == 0 || m.hashes.size() % 32 != 0 || m.chunk_count() != (m.size + m.chunk - 1) / m.chunk) continue;
    ++votes[m];
  }
  if (votes.empty()) {
    auto why = dropped_summary();
    return fail("no provider could serve " + key_.str() + (why.empty() ? "" : " (" + why + ")"));
  }
  auto best = std::max_element(votes.begin(), votes.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  manifest_ = best->first;
  for (std::size_t i = 0; i < peers_.size(); ++i)
    if (peers_[i].alive && !(peers_[i].manifest && *peers_[i].manifest == *manifest_))
      drop(i, "its manifest disagrees with the other peers'");
  // Opening checks resumed chunks, which reads the partial file: on the worker.
  asio::post(worker_, [self = shared_from_this(), part = part_path_, manifest = *manifest_,
                       hash = key_.verifiable() ? key_.hash() : HashAlgorithm::None]() mutable {
    auto sink = ChunkSink::open(part, std::move(manifest), ContentHash::start(hash));
    auto& io = self->io_;  // before self moves into the handler
    asio::post(io, [self = std::move(self), sink = std::move(sink)]() mutable { self->on_sink(std::move(sink)); });
  });
}

void Fetcher::on_sink(Result<std::unique_ptr<ChunkSink>> sink) {
  if (finished_) return;
  if (!sink) return fail(sink.error());
  sink_ = std::move(*sink);
  report_.bytes_resumed = sink_->resumed_bytes();
  scheduler_.emplace(manifest_->chunk_count(), sink_->done());
  pump();
}

void Fetcher::pump() {
  if (finished_ || !scheduler_) return;
  if (scheduler_->complete()) return complete();
  bool any_alive = false;
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    auto& p = peers_[i];
    if (!p.alive) continue;
    any_alive = true;
    while (!paused_ && p.in_flight < options_.window) {
      auto chunk = scheduler_->next_for(i);
      if (!chunk) break;
      request(i, *chunk);
    }
  }
  if (!any_alive && redials_pending_ == 0) fail("every provider failed (" + dropped_summary() + ")");
}

void Fetcher::request(std::size_t peer, std::size_t chunk) {
  auto offset = static_cast<std::uint64_t>(chunk) * manifest_->chunk;
  auto len = manifest_->chunk_length(chunk);
  std::uint32_t id = next_id_++;
  auto buffer = std::make_shared<Bytes>();
  buffer->reserve(len);
  requests_[id] = Request{peer, chunk, std::move(buffer)};
  ++peers_[peer].in_flight;
  peers_[peer].link->send(Get{id, key_.str(), offset, len});
  if (!options_.download_limit) return;
  auto wait = options_.download_limit->take(len, RateLimiter::Clock::now());
  if (wait <= RateLimiter::Clock::duration::zero()) return;
  // Over the download rate: no new request until these bytes are paid for.
  paused_ = true;
  pacing_.expires_after(wait);
  pacing_.async_wait([self = shared_from_this()](const std::error_code&) {
    self->paused_ = false;
    self->pump();
  });
}

void Fetcher::chunk_arrived(std::uint32_t id) {
  auto req = std::move(requests_[id]);
  requests_.erase(id);
  // The request keeps its slot (in_flight) until the worker has checked it, so memory
  // stays bounded by the window however fast the network is.
  asio::post(worker_, [self = shared_from_this(), sink = sink_, req = std::move(req)]() mutable {
    auto verdict = sink->accept(req.chunk, *req.buffer);
    auto bytes = req.buffer->size();
    req.buffer.reset();
    auto& io = self->io_;
    asio::post(io, [self = std::move(self), peer = req.peer, chunk = req.chunk, verdict = std::move(verdict),
                           bytes]() mutable { self->on_verdict(peer, chunk, std::move(verdict), bytes); });
  });
}

void Fetcher::on_verdict(std::size_t peer, std::size_t chunk, Result<ChunkSink::Verdict> verdict, std::size_t bytes) {
  auto& p = peers_[peer];
  if (p.alive) --p.in_flight;
  if (finished_) return;
  if (!verdict) return fail(verdict.error());
  switch (*verdict) {
    case ChunkSink::Verdict::Corrupt:
      scheduler_->on_failed(peer, chunk);
      drop(peer, "sent a chunk that fails verification");
      break;
    case ChunkSink::Verdict::Duplicate:
      break;
    case ChunkSink::Verdict::Stored:
      scheduler_->on_done(chunk);
      cancel_duplicates(chunk);
      report_.bytes_from[p.node.hex()] += bytes;
      report_.bytes_fetched += bytes;
      if (progress_) {
        std::size_t alive = 0;
        for (const auto& q : peers_) alive += q.alive;
        progress_({report_.bytes_fetched + report_.bytes_resumed, manifest_->size, alive});
      }
      break;
  }
  pump();
}

void Fetcher::cancel_duplicates(std::size_t chunk) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (it->second.chunk != chunk) {
      ++it;
      continue;
    }
    auto& p = peers_[it->second.peer];
    --p.in_flight;
    p.link->send(Cancel{it->first});
    cancelled_.insert(it->first);
    it = requests_.erase(it);
  }
}

std::string Fetcher::dropped_summary() const {
  std::string why;
  for (const auto& [node, reason] : report_.dropped) why += (why.empty() ? "" : "; ") + node.substr(0, 8) + ": " + reason;
  return why;
}

void Fetcher::drop(std::size_t peer, const std::string& why) {
  auto& p = peers_[peer];
  if (!p.alive) return;
  p.alive = false;
  report_.dropped[p.node.hex()] = why;
  p.link->close();
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (it->second.peer == peer) {
      if (scheduler_) scheduler_->on_failed(peer, it->second.chunk);
      it = requests_.erase(it);
    } else {
      ++it;
    }
  }
  p.in_flight = 0;
  if (scheduler_) asio::post(io_, [self = shared_from_this()] { self->pump(); });
}

void Fetcher::link_lost(std::size_t peer, const std::string& why) {
  constexpr int kMaxRedials = 2;
  auto& p = peers_[peer];
  if (!p.alive) return;
  auto source = p.source;
  auto remote = p.link->remote_endpoint();
  drop(peer, "link lost: " + why);
  if (finished_ || completing_ || redials_[source] >= kMaxRedials) return;
  ++redials_[source];
  redialing_[source] = true;
  ++redials_pending_;
  ++dials_pending_;
  // The path that broke (an endpoint, or a relay that went away or cut the circuit) is
  // tried last this time.
  auto& address = sources_[source].address;
  std::stable_partition(address.endpoints.begin(), address.endpoints.end(),
                        [&](const asio::ip::tcp::endpoint& e) { return e != remote; });
  std::stable_partition(address.relays.begin(), address.relays.end(), [&](const RelayRoute& r) {
    return std::find(r.endpoints.begin(), r.endpoints.end(), remote) == r.endpoints.end();
  });
  dial(source);
}

void Fetcher::complete() {
  if (completing_) return;
  completing_ = true;
  close_links();
  asio::post(worker_, [self = shared_from_this(), sink = sink_]() mutable {
    auto digest = sink->finish();
    if (digest && !digest->empty() && *digest != self->key_.digest_hex()) sink->discard();
    auto& io = self->io_;
    asio::post(io, [self = std::move(self), digest = std::move(digest)] {
      if (self->finished_) return;
      if (!digest) return self->fail(digest.error());
      if (!digest->empty() && *digest != self->key_.digest_hex())
        // Every chunk matched a manifest that does not match the key: the agreeing peers lied.
        return self->fail("the assembled object does not match the key's hash; discarded");
      if (::rename(self->part_path_.c_str(), self->options_.destination.c_str()) != 0)
        return self->fail("cannot move the object into " + self->options_.destination.string() + ": " +
                          std::strerror(errno));
      ::unlink((self->part_path_.string() + ".chunks").c_str());
      self->finished_ = true;
      self->done_(std::nullopt, self->report_);
    });
  });
}

void Fetcher::close_links() {
  for (auto& p : peers_)
    if (p.alive) p.link->close();
}

void Fetcher::fail(const std::string& why) {
  if (finished_) return;
  finished_ = true;
  close_links();
  done_(why, report_);
}

}  // namespace annexswarm
