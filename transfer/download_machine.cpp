#include "transfer/download_machine.hpp"

#include <algorithm>

#include "protocol/crypto.hpp"

namespace annexswarm {
using namespace std::chrono_literals;

DownloadMachine::DownloadMachine(std::vector<std::string> names, std::string what, std::optional<std::uint64_t> key_size,
                                 DownloadLimits limits, std::uint64_t jitter_seed)
    : limits_(limits),
      names_(std::move(names)),
      what_(std::move(what)),
      key_size_(key_size),
      peers_(names_.size()),
      report_(names_.size()),
      jitter_state_(jitter_seed | 1) {}

std::vector<DownloadMachine::Action> DownloadMachine::handle(const Event& event, Clock::time_point now) {
  now_ = now;
  out_.clear();
  if (!finished_) std::visit([this](const auto& e) { on(e); }, event);
  return std::move(out_);
}

std::chrono::milliseconds DownloadMachine::jitter(std::chrono::milliseconds base) {
  // Up to a quarter more, so peers told "come back in 2 s" do not all come back at once.
  jitter_state_ = jitter_state_ * 6364136223846793005ull + 1442695040888963407ull;
  auto spread = std::max<std::int64_t>(base.count() / 4, 1);
  return base + std::chrono::milliseconds(static_cast<std::int64_t>((jitter_state_ >> 33) % spread));
}

// ---- Links ----

void DownloadMachine::on(const Start&) {
  last_progress_ = now_;
  if (peers_.empty()) return fail("no provider of " + what_ + " is known");
  for (PeerId p = 0; p < peers_.size(); ++p) {
    peers_[p].state = State::Dialing;
    out_.push_back(Dial{p});
  }
}

void DownloadMachine::on(const Connected& e) {
  auto& p = peers_[e.peer];
  if (p.state != State::Dialing) return;
  p.last_frame = now_;
  if (p.redialing) {
    p.redialing = false;
    // Dialled again after a broken link: it already named its manifest.
    if (p.candidate) {
      p.state = State::Ready;
      return pump();
    }
  }
  p.state = State::AwaitingManifest;
  ask_page(e.peer, 0);
}

void DownloadMachine::on(const ConnectFailed& e) {
  auto& p = peers_[e.peer];
  if (p.state != State::Dialing) return;
  auto& r = report_[e.peer];
  if (p.redialing) {
    r.dropped = r.redialled + "; dialling again failed: " + e.why;
    r.redialled.clear();
    p.state = State::Gone;
    out_.push_back(Drop{e.peer, r.dropped, false});
    pump();
    return check_all_gone();
  }
  gone(e.peer, e.why, false);
}

void DownloadMachine::on(const LinkLost& e) { lost(e.peer, "link lost: " + e.why); }

void DownloadMachine::on(const PeerBusy& e) {
  // Not a failure: the peer serves as many members as it will. Dial it again when it
  // says, with jitter, without counting it against the redials of a broken link.
  auto& p = peers_[e.peer];
  if (p.state == State::Gone || p.state == State::Idle) return;
  release_requests(e.peer);
  auto wait = jitter(e.retry_after);
  if (p.busy_waited + wait > limits_.max_busy_wait) return gone(e.peer, "busy for too long: " + e.why, false);
  p.busy_waited += wait;
  p.busy = true;
  p.state = State::Waiting;
  p.redialing = true;
  p.retry_at = now_ + wait;
  waiting_why_ = e.why;
  out_.push_back(Drop{e.peer, e.why, false});
  maybe_choose();
  pump();
}

void DownloadMachine::lost(PeerId peer, const std::string& why) {
  auto& p = peers_[peer];
  if (p.state == State::Gone || p.state == State::Idle) return;
  release_requests(peer);
  if (p.redials >= limits_.max_redials) return gone(peer, why, false);
  // Not bad data, only a broken path: dial it again after a pause (the dialer tries the
  // path that broke last).
  ++p.redials;
  p.redialing = true;
  p.state = State::Waiting;
  p.retry_at = now_ + jitter(limits_.redial_backoff);
  report_[peer].redialled = why;
  out_.push_back(Drop{peer, why, false});
  pump();
}

void DownloadMachine::release_requests(PeerId peer) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (it->second.peer != peer) {
      ++it;
      continue;
    }
    if (it->second.kind == Kind::Chunk && scheduler_) scheduler_->on_failed(peer, it->second.chunk);
    if (it->second.kind == Kind::Page && chosen_) {
      auto& c = candidates_[*chosen_];
      if (it->second.page < c.page_from.size() && c.page_from[it->second.page] == peer && !c.page_hashes[it->second.page])
        c.page_from[it->second.page].reset();
    }
    it = requests_.erase(it);
  }
  peers_[peer].in_flight = 0;
}

void DownloadMachine::gone(PeerId peer, const std::string& why, bool bad_data) {
  auto& p = peers_[peer];
  if (p.state == State::Gone) return;
  release_requests(peer);
  p.state = State::Gone;
  report_[peer].dropped = why;
  report_[peer].bad_data = bad_data;
  report_[peer].redialled.clear();
  out_.push_back(Drop{peer, why, bad_data});
  if (chosen_ && !manifest_ready()) fetch_pages();
  maybe_choose();
  pump();
  check_all_gone();
}

// ---- Manifests ----

DownloadMachine::RequestId DownloadMachine::ask_page(PeerId peer, std::uint32_t page) {
  auto id = next_request_++;
  requests_[id] = Request{peer, Kind::Page, page, 0, now_ + limits_.page_deadline, false};
  out_.push_back(RequestPage{peer, id, page});
  return id;
}

void DownloadMachine::on(const PageArrived& e) {
  auto it = requests_.find(e.request);
  if (it == requests_.end() || it->second.peer != e.peer || it->second.kind != Kind::Page) return;
  auto page = it->second.page;
  requests_.erase(it);
  auto& p = peers_[e.peer];
  p.last_frame = now_;
  const auto& m = e.reply;
  if (m.page != page) return gone(e.peer, "sent manifest page " + std::to_string(m.page) + " for page " +
                                              std::to_string(page), true);
  if (page == 0 && !p.candidate) {
    if (m.chunk_size != limits_.chunk_size)
      return gone(e.peer, "offers chunks of " + std::to_string(m.chunk_size) + " bytes, not the protocol's " +
                              std::to_string(limits_.chunk_size), true);
    if (key_size_ && m.object_size != *key_size_)
      return gone(e.peer, "its object has " + std::to_string(m.object_size) + " bytes, the key says " +
                              std::to_string(*key_size_), true);
    if (pinned_root_ && m.root != *pinned_root_)
      return gone(e.peer, "offers other bytes than the share its key names (another manifest root)", true);
    std::size_t c = 0;
    while (c < candidates_.size() && !(candidates_[c].root == m.root && candidates_[c].size == m.object_size)) ++c;
    if (c == candidates_.size()) {
      Candidate fresh;
      fresh.size = m.object_size;
      fresh.chunk = m.chunk_size;
      fresh.root = m.root;
      auto chunks = (m.object_size + m.chunk_size - 1) / m.chunk_size;
      fresh.pages = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, (chunks + peer::kManifestPageChunks - 1) /
                                                                              peer::kManifestPageChunks));
      fresh.page_hashes.resize(fresh.pages);
      fresh.page_from.resize(fresh.pages);
      candidates_.push_back(std::move(fresh));
    }
    auto& cand = candidates_[c];
    cand.backers.push_back(e.peer);
    p.candidate = c;
    if (cand.bad) return gone(e.peer, "offers a copy already found not to match the key's hash", true);
    if (!cand.page_hashes[0]) {
      cand.page_hashes[0] = m.hashes;
      cand.page_from[0] = e.peer;
    }
    p.state = State::Ready;
    if (!choose_at_) choose_at_ = now_ + limits_.choose_grace;
    if (chosen_) {
      if (*chosen_ == c && !manifest_ready()) fetch_pages();
      return pump();
    }
    return maybe_choose();
  }
  // A later page of the chosen candidate.
  if (!chosen_ || p.candidate != chosen_) return;
  auto& cand = candidates_[*chosen_];
  if (page >= cand.pages || m.root != cand.root || m.object_size != cand.size)
    return gone(e.peer, "sent a manifest page of another object", true);
  if (!cand.page_hashes[page]) {
    cand.page_hashes[page] = m.hashes;
    cand.page_from[page] = e.peer;
  }
  if (manifest_ready()) return manifest_complete();
  fetch_pages();
}

bool DownloadMachine::manifest_ready() const {
  if (!chosen_) return false;
  const auto& c = candidates_[*chosen_];
  return std::all_of(c.page_hashes.begin(), c.page_hashes.end(), [](const auto& h) { return h.has_value(); });
}

void DownloadMachine::maybe_choose() {
  if (chosen_ || finished_) return;
  bool anyone = std::any_of(candidates_.begin(), candidates_.end(), [](const Candidate& c) { return !c.bad; });
  if (!anyone) return;
  // A peer whose link broke (or that is busy) and waits to be dialled again holds nobody
  // back: it may join the copy chosen without it (a provider gone but still on the DHT is
  // this case, and must not cost every download the grace period).
  bool all_answered = std::none_of(peers_.begin(), peers_.end(), [](const Peer& p) {
    return (p.state == State::Dialing && !p.redialing) || (p.state == State::AwaitingManifest && !p.redialing) ||
           (p.state == State::Waiting && !p.candidate && !p.redialing);
  });
  if (all_answered || (choose_at_ && now_ >= *choose_at_)) choose();
}

void DownloadMachine::choose() {
  // The copy most peers offer; on a tie, the one offered first. Each peer's vote counts
  // while it is not gone.
  std::optional<std::size_t> best;
  std::size_t best_votes = 0;
  for (std::size_t c = 0; c < candidates_.size(); ++c) {
    if (candidates_[c].bad) continue;
    std::size_t votes = 0;
    for (auto b : candidates_[c].backers) votes += peers_[b].state != State::Gone;
    if (votes > best_votes) {
      best = c;
      best_votes = votes;
    }
  }
  if (!best) return;
  chosen_ = best;
  if (manifest_ready()) return manifest_complete();
  fetch_pages();
}

void DownloadMachine::fetch_pages() {
  // Pages still missing, spread over the candidate's backers; one outstanding per page.
  auto& c = candidates_[*chosen_];
  std::vector<PeerId> backers;
  for (auto b : c.backers)
    if (peers_[b].state == State::Ready) backers.push_back(b);
  if (backers.empty()) return;
  std::set<std::uint32_t> asked;
  for (const auto& [id, r] : requests_)
    if (r.kind == Kind::Page && peers_[r.peer].candidate == chosen_) asked.insert(r.page);
  std::size_t next = 0;
  for (std::uint32_t page = 0; page < c.pages; ++page) {
    if (c.page_hashes[page] || asked.count(page)) continue;
    auto peer = backers[next++ % backers.size()];
    c.page_from[page] = peer;
    ask_page(peer, page);
  }
}

void DownloadMachine::manifest_complete() {
  auto& c = candidates_[*chosen_];
  Bytes all;
  for (const auto& h : c.page_hashes) all.insert(all.end(), h->begin(), h->end());
  auto root = crypto::sha256(all);
  if (!std::equal(root.begin(), root.end(), c.root.begin(), c.root.end())) {
    // Some page was not what its root says. One peer served them all: it lies. Several:
    // ask the first backer for every page, and find out.
    std::set<PeerId> servers;
    for (const auto& from : c.page_from)
      if (from) servers.insert(*from);
    for (auto& h : c.page_hashes) h.reset();
    for (auto& f : c.page_from) f.reset();
    if (servers.size() == 1) return gone(*servers.begin(), "its manifest pages do not match its own root", true);
    for (auto b : c.backers)
      if (peers_[b].state == State::Ready) {
        for (std::uint32_t page = 0; page < c.pages; ++page) {
          c.page_from[page] = b;
          ask_page(b, page);
        }
        break;
      }
    return;
  }
  ObjectManifest manifest{c.size, c.chunk, std::move(all)};
  sink_open_ = false;
  scheduler_.reset();
  out_.push_back(OpenSink{std::move(manifest)});
}

void DownloadMachine::on(const SinkOpened& e) {
  if (!chosen_) return;
  sink_open_ = true;
  bytes_resumed_ = e.resumed_bytes;
  scheduler_.emplace(e.done.size(), e.done, limits_.head_lag);
  stored_by_.assign(e.done.size(), std::nullopt);
  last_progress_ = now_;
  pump();
}

// ---- Chunks ----

bool DownloadMachine::serving(PeerId peer) const {
  return peers_[peer].state == State::Ready && peers_[peer].candidate == chosen_;
}

void DownloadMachine::pump() {
  if (finished_ || !sink_open_ || !scheduler_ || checking_) return;
  if (scheduler_->complete()) {
    checking_ = true;
    // Requests still out for chunks that another peer delivered: cancel them.
    for (auto it = requests_.begin(); it != requests_.end();) {
      if (it->second.kind == Kind::Chunk && !it->second.arrived) {
        out_.push_back(Cancel{it->second.peer, it->first});
        if (peers_[it->second.peer].in_flight) --peers_[it->second.peer].in_flight;
        it = requests_.erase(it);
      } else {
        ++it;
      }
    }
    out_.push_back(CheckObject{});
    return;
  }
  const auto& c = candidates_[*chosen_];
  ObjectManifest shape{c.size, c.chunk, {}};
  for (PeerId p = 0; p < peers_.size(); ++p) {
    if (!serving(p)) continue;
    auto& peer = peers_[p];
    while (peer.in_flight < limits_.window) {
      auto chunk = scheduler_->next_for(p);
      if (!chunk) break;
      auto id = next_request_++;
      requests_[id] = Request{p, Kind::Chunk, 0, *chunk, {}, false};
      if (peer.in_flight == 0) peer.last_frame = now_;  // the stall clock starts with the first request
      ++peer.in_flight;
      auto offset = static_cast<std::uint64_t>(*chunk) * c.chunk;
      auto length = std::min<std::uint64_t>(c.chunk, c.size - offset);
      out_.push_back(RequestChunk{p, id, *chunk, offset, length});
    }
  }
}

void DownloadMachine::on(const DataSeen& e) { peers_[e.peer].last_frame = now_; }

void DownloadMachine::on(const ChunkArrived& e) {
  auto it = requests_.find(e.request);
  if (it == requests_.end() || it->second.peer != e.peer) return;
  it->second.arrived = true;
  peers_[e.peer].last_frame = now_;
}

void DownloadMachine::on(const ChunkChecked& e) {
  // The request is done whatever the verdict; its slot frees only now, so memory stays
  // bounded by the window however fast the network is.
  for (auto it = requests_.begin(); it != requests_.end(); ++it)
    if (it->second.peer == e.peer && it->second.kind == Kind::Chunk && it->second.chunk == e.chunk && it->second.arrived) {
      requests_.erase(it);
      if (peers_[e.peer].in_flight) --peers_[e.peer].in_flight;
      break;
    }
  if (!scheduler_ || e.chunk >= scheduler_->chunk_count()) return;
  switch (e.verdict) {
    case ChunkSink::Verdict::Corrupt:
      scheduler_->on_failed(e.peer, e.chunk);
      gone(e.peer, "sent a chunk that fails verification", true);
      break;
    case ChunkSink::Verdict::Duplicate:
      break;
    case ChunkSink::Verdict::Stored:
      scheduler_->on_done(e.chunk);
      stored_by_[e.chunk] = e.peer;
      // A peer that delivers is not kept waiting for nothing: its busy time starts over (a
      // keeper still fetching serves chunks as they come, and is busy between them).
      peers_[e.peer].busy_waited = {};
      report_[e.peer].bytes += e.bytes;
      bytes_fetched_ += e.bytes;
      last_progress_ = now_;
      // The other copy of an endgame chunk is not needed any more.
      for (auto it = requests_.begin(); it != requests_.end();) {
        if (it->second.kind == Kind::Chunk && it->second.chunk == e.chunk && !it->second.arrived) {
          out_.push_back(Cancel{it->second.peer, it->first});
          if (peers_[it->second.peer].in_flight) --peers_[it->second.peer].in_flight;
          it = requests_.erase(it);
        } else {
          ++it;
        }
      }
      break;
  }
  pump();
}

void DownloadMachine::on(const ObjectChecked& e) {
  checking_ = false;
  if (e.matches) {
    finished_ = true;
    out_.push_back(Finish{});
    return;
  }
  if (!e.corrupt_chunks.empty() && scheduler_) {
    // Chunks stored without a check (see ChunkSink::open) fail the manifest: their senders
    // lied. They go, and the chunks are fetched again from the others, checked this time.
    std::set<PeerId> liars;
    const auto& c = candidates_[*chosen_];
    for (auto chunk : e.corrupt_chunks) {
      if (chunk >= scheduler_->chunk_count()) continue;
      scheduler_->on_corrupt(chunk);
      auto offset = static_cast<std::uint64_t>(chunk) * c.chunk;
      auto length = std::min<std::uint64_t>(c.chunk, c.size - offset);
      if (auto by = stored_by_[chunk]) {
        liars.insert(*by);
        report_[*by].bytes -= std::min(report_[*by].bytes, length);
      }
      bytes_fetched_ -= std::min(bytes_fetched_, length);
      stored_by_[chunk].reset();
    }
    for (auto liar : liars) gone(liar, "sent a chunk that fails verification", true);
    return pump();
  }
  // Every chunk matches this manifest (checked on arrival or by the recheck), and the
  // object does not match the key: the copy its backers hold is bad. Try the next one, keeping the chunks that match it too. The
  // sink and scheduler of the bad copy go first, so dropping its backers cannot start
  // another check of it.
  auto& bad = candidates_[*chosen_];
  bad.bad = true;
  auto backers = bad.backers;
  chosen_.reset();
  sink_open_ = false;
  scheduler_.reset();
  for (auto b : backers) gone(b, "its copy does not match the key's hash", true);
  if (finished_ || chosen_) return;  // failed, or dropping them chose the next copy
  bool other = std::any_of(candidates_.begin(), candidates_.end(), [](const Candidate& c) { return !c.bad; });
  if (!other) {
    bool asking = std::any_of(peers_.begin(), peers_.end(), [](const Peer& p) {
      return p.state == State::Dialing || p.state == State::AwaitingManifest || p.state == State::Waiting;
    });
    if (!asking) return fail("the assembled object does not match the key's hash, and no peer offers another copy (" +
                             dropped_summary() + ")");
    return;  // a peer still to answer may offer another copy
  }
  choose();
}

void DownloadMachine::on(const LocalFailure& e) { fail(e.why); }

// ---- Refusals and time ----

void DownloadMachine::on(const Refused& e) {
  auto it = requests_.find(e.request);
  if (it == requests_.end() || it->second.peer != e.peer) return;
  auto request = it->second;
  requests_.erase(it);
  auto& p = peers_[e.peer];
  p.last_frame = now_;
  if (request.kind == Kind::Chunk) {
    if (scheduler_) scheduler_->on_failed(e.peer, request.chunk);
    if (p.in_flight) --p.in_flight;
  }
  if (e.code == peer::ErrorCode::Busy) {
    auto wait = jitter(std::chrono::milliseconds(std::max<std::uint32_t>(e.retry_after_ms, 200)));
    if (p.busy_waited + wait > limits_.max_busy_wait)
      return gone(e.peer, "busy for too long: " + e.message, false);
    p.busy_waited += wait;
    p.busy = true;
    // Its other requests go to others while it is busy.
    release_requests(e.peer);
    p.state = State::Waiting;
    p.retry_at = now_ + wait;
    p.resume_page0 = request.kind == Kind::Page && request.page == 0 && !p.candidate;
    waiting_why_ = e.message;
    maybe_choose();
    return pump();
  }
  if (e.code == peer::ErrorCode::NotPresent) {
    report_[e.peer].absent = true;
    return gone(e.peer, "does not hold the object: " + e.message, false);
  }
  gone(e.peer, "refused: " + e.message, false);
}

void DownloadMachine::on(const Tick&) {
  for (PeerId p = 0; p < peers_.size(); ++p) {
    auto& peer = peers_[p];
    if (peer.state == State::Waiting && now_ >= peer.retry_at) {
      peer.busy = false;
      if (peer.redialing) {
        peer.state = State::Dialing;
        out_.push_back(Dial{p});
      } else if (peer.resume_page0 || !peer.candidate) {
        peer.resume_page0 = false;
        peer.state = State::AwaitingManifest;
        ask_page(p, 0);
      } else {
        peer.state = State::Ready;
      }
    }
  }
  // Pages unanswered past their deadline: that peer is silent.
  std::set<PeerId> silent;
  for (const auto& [id, r] : requests_)
    if (r.kind == Kind::Page && now_ >= r.deadline) silent.insert(r.peer);
  for (auto p : silent)
    gone(p, "no answer to MANIFEST within " + std::to_string(limits_.page_deadline.count() / 1000) + " s", false);
  // Requests out and not a frame for the stall period: stalled.
  for (PeerId p = 0; p < peers_.size(); ++p) {
    auto& peer = peers_[p];
    if (peer.state != State::Ready) continue;
    bool waiting_on_it = std::any_of(requests_.begin(), requests_.end(), [&](const auto& kv) {
      return kv.second.peer == p && kv.second.kind == Kind::Chunk && !kv.second.arrived;
    });
    if (waiting_on_it && now_ - peer.last_frame >= limits_.stall)
      lost(p, "stalled: no data for " + std::to_string(limits_.stall.count() / 1000) + " s");
  }
  maybe_choose();
  pump();
  check_all_gone();
}

std::optional<DownloadMachine::Clock::time_point> DownloadMachine::next_deadline() const {
  if (finished_) return std::nullopt;
  std::optional<Clock::time_point> at;
  auto consider = [&](Clock::time_point t) {
    if (!at || t < *at) at = t;
  };
  if (!chosen_ && choose_at_) consider(*choose_at_);
  for (const auto& [id, r] : requests_)
    if (r.kind == Kind::Page) consider(r.deadline);
  for (PeerId p = 0; p < peers_.size(); ++p) {
    const auto& peer = peers_[p];
    if (peer.state == State::Waiting) consider(peer.retry_at);
    if (peer.state == State::Ready && peer.in_flight) consider(peer.last_frame + limits_.stall);
  }
  return at;
}

void DownloadMachine::check_all_gone() {
  if (finished_) return;
  bool anyone = std::any_of(peers_.begin(), peers_.end(), [](const Peer& p) { return p.state != State::Gone; });
  if (anyone) return;
  // Nobody ever offered a copy: say so in those words.
  if (candidates_.empty()) return fail("no provider could serve " + what_ + " (" + dropped_summary() + ")");
  fail("every provider failed (" + dropped_summary() + ")");
}

void DownloadMachine::fail(const std::string& why) {
  if (finished_) return;
  finished_ = true;
  for (const auto& [id, r] : requests_)
    if (!(r.kind == Kind::Chunk && r.arrived)) out_.push_back(Cancel{r.peer, id});
  requests_.clear();
  out_.push_back(Fail{why});
}

std::string DownloadMachine::dropped_summary() const {
  std::string why;
  for (PeerId p = 0; p < report_.size(); ++p)
    if (!report_[p].dropped.empty())
      why += (why.empty() ? "" : "; ") + names_[p] + ": " + report_[p].dropped;
  return why;
}

DownloadMachine::Progress DownloadMachine::progress(Clock::time_point now) const {
  Progress out;
  out.bytes_done = bytes_fetched_ + bytes_resumed_;
  if (chosen_) out.bytes_total = candidates_[*chosen_].size;
  else if (key_size_) out.bytes_total = *key_size_;
  for (PeerId p = 0; p < peers_.size(); ++p) {
    if (serving(p) && sink_open_) ++out.peers;
    if (peers_[p].state == State::Waiting && peers_[p].busy) ++out.waiting;
  }
  if (out.waiting) out.waiting_why = waiting_why_;
  out.stalled = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_progress_);
  return out;
}

}  // namespace annexswarm
