#include "transfer/fetcher.hpp"

#include <fcntl.h>
#include <gnutls/crypto.h>
#include <unistd.h>

#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "protocol/crypto.hpp"

namespace annexswarm {
using namespace peer;
namespace fs = std::filesystem;

namespace {
std::optional<gnutls_digest_algorithm_t> gnutls_digest(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::Md5: return GNUTLS_DIG_MD5;
    case HashAlgorithm::Sha1: return GNUTLS_DIG_SHA1;
    case HashAlgorithm::Sha224: return GNUTLS_DIG_SHA224;
    case HashAlgorithm::Sha256: return GNUTLS_DIG_SHA256;
    case HashAlgorithm::Sha384: return GNUTLS_DIG_SHA384;
    case HashAlgorithm::Sha512: return GNUTLS_DIG_SHA512;
    case HashAlgorithm::Sha3_224: return GNUTLS_DIG_SHA3_224;
    case HashAlgorithm::Sha3_256: return GNUTLS_DIG_SHA3_256;
    case HashAlgorithm::Sha3_384: return GNUTLS_DIG_SHA3_384;
    case HashAlgorithm::Sha3_512: return GNUTLS_DIG_SHA3_512;
    default: return std::nullopt;
  }
}
}  // namespace

Result<std::string> file_digest(const fs::path& file, HashAlgorithm hash) {
  auto algo = gnutls_digest(hash);
  if (!algo) return std::string();
  gnutls_hash_hd_t h;
  if (gnutls_hash_init(&h, *algo) < 0) return Error{"hash algorithm unavailable"};
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    gnutls_hash_deinit(h, nullptr);
    return Error{"cannot read " + file.string() + ": " + std::strerror(errno)};
  }
  Bytes buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    gnutls_hash(h, buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  Bytes digest(gnutls_hash_get_len(*algo));
  gnutls_hash_deinit(h, digest.data());
  return to_hex(digest);
}

Fetcher::Fetcher(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials, std::vector<SwarmToken> swarms,
                 AnnexKey key, std::vector<FetchSource> sources, FetchOptions options, ProgressFn progress,
                 DoneFn done)
    : io_(io),
      credentials_(std::move(credentials)),
      swarms_(std::move(swarms)),
      key_(std::move(key)),
      sources_(std::move(sources)),
      options_(std::move(options)),
      progress_(std::move(progress)),
      done_(std::move(done)) {
  part_path_ = options_.destination;
  part_path_ += ".part";
}

Fetcher::~Fetcher() {
  if (part_fd_ >= 0) ::close(part_fd_);
}

void Fetcher::start() {
  if (!key_.verifiable() && !options_.allow_unverified)
    return fail("key " + key_.str() + " carries no hash, so its content cannot be verified; "
                "allow unverified downloads to fetch it anyway");
  if (sources_.empty()) return fail("no provider of " + key_.str() + " is known");
  dials_pending_ = sources_.size();
  for (std::size_t i = 0; i < sources_.size(); ++i) dial(i);
}

void Fetcher::dial(std::size_t source) {
  auto self = shared_from_this();
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  asio::async_connect(*socket, sources_[source].endpoints,
                      [self, source, socket](const std::error_code& ec, const asio::ip::tcp::endpoint&) {
                        if (ec) {
                          self->report_.dropped[self->sources_[source].node.hex()] = "cannot connect: " + ec.message();
                          --self->dials_pending_;
                          return self->maybe_choose_manifest();
                        }
                        auto stream = std::make_shared<TlsStream>(std::move(*socket), self->credentials_,
                                                                  TlsStream::Side::Client);
                        auto link = std::make_shared<PeerLink>(
                            stream, std::vector<SwarmToken>{self->swarms_[self->sources_[source].swarm]},
                            Role::Dialer);
                        link->establish(self->sources_[source].node,
                                        [self, source, link](Result<PeerLink::Established> r) {
                                          self->on_link(source, link, std::move(r));
                                        });
                      });
}

void Fetcher::on_link(std::size_t source, std::shared_ptr<PeerLink> link, Result<PeerLink::Established> r) {
  if (finished_) return link->close();
  if (!r) {
    report_.dropped[sources_[source].node.hex()] = r.error();
    --dials_pending_;
    return maybe_choose_manifest();
  }
  std::size_t index = peers_.size();
  peers_.push_back(Peer{sources_[source].node, link, std::nullopt, 0, true});
  link->send(Manifest{0, key_.str()});
  receive_loop(index);
}

void Fetcher::receive_loop(std::size_t peer) {
  auto self = shared_from_this();
  peers_[peer].link->receive([self, peer](Result<Frame> frame) {
    if (self->finished_ || !self->peers_[peer].alive) return;
    if (!frame) return self->drop(peer, frame.error());
    self->on_frame(peer, std::move(*frame));
    if (!self->finished_ && self->peers_[peer].alive) self->receive_loop(peer);
  });
}

void Fetcher::on_frame(std::size_t peer, Frame frame) {
  auto& p = peers_[peer];
  if (auto* m = std::get_if<ManifestReply>(&frame)) {
    if (p.manifest_key) return drop(peer, "sent a second manifest");
    p.manifest_key = ManifestKey{m->object_size, m->chunk_size, m->hashes};
    --dials_pending_;
    return maybe_choose_manifest();
  }
  if (auto* e = std::get_if<ErrorFrame>(&frame)) {
    if (!p.manifest_key) --dials_pending_;
    drop(peer, "refused: " + e->message);
    return maybe_choose_manifest();
  }
  if (auto* d = std::get_if<Data>(&frame)) {
    auto it = requests_.find(d->id);
    if (it == requests_.end() || it->second.peer != peer) return drop(peer, "sent data nobody asked for");
    auto& req = it->second;
    std::uint64_t expected = static_cast<std::uint64_t>(req.chunk) * manifest_->chunk + req.buffer.size();
    if (d->offset != expected) return drop(peer, "sent data out of order");
    req.buffer.insert(req.buffer.end(), d->bytes.begin(), d->bytes.end());
    if (d->fin) finish_chunk(peer, d->id);
    return;
  }
  drop(peer, "sent an unexpected frame");
}

void Fetcher::maybe_choose_manifest() {
  if (finished_ || manifest_ || dials_pending_ > 0) return;
  // The manifest most peers agree on; a size in the key must match.
  std::map<ManifestKey, std::size_t> votes;
  for (const auto& p : peers_)
    if (p.alive && p.manifest_key && (!key_.size() || p.manifest_key->size == *key_.size())) ++votes[*p.manifest_key];
  if (votes.empty()) {
    auto why = dropped_summary();
    return fail("no provider could serve " + key_.str() + (why.empty() ? "" : " (" + why + ")"));
  }
  auto best = std::max_element(votes.begin(), votes.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  manifest_ = best->first;
  for (std::size_t i = 0; i < peers_.size(); ++i)
    if (peers_[i].alive && !(peers_[i].manifest_key && *peers_[i].manifest_key == *manifest_))
      drop(i, "its manifest disagrees with the other peers'");
  if (auto r = open_partial(); !r) return fail(r.error());
  pump();
}

Result<bool> Fetcher::open_partial() {
  auto size = manifest_->size;
  std::size_t chunks = manifest_->hashes.size() / 32;
  part_fd_ = ::open(part_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (part_fd_ < 0) return Error{"cannot write " + part_path_.string() + ": " + std::strerror(errno)};
  if (::ftruncate(part_fd_, static_cast<off_t>(size)) != 0)
    return Error{"cannot size " + part_path_.string() + ": " + std::strerror(errno)};
  // Resume: chunks listed as done are kept if they still match the manifest.
  std::vector<bool> done(chunks, false);
  std::ifstream list(part_path_.string() + ".chunks");
  std::size_t index;
  Bytes buf(manifest_->chunk);
  while (list >> index) {
    if (index >= chunks || done[index]) continue;
    auto offset = static_cast<std::uint64_t>(index) * manifest_->chunk;
    auto len = static_cast<std::size_t>(std::min<std::uint64_t>(manifest_->chunk, size - offset));
    if (::pread(part_fd_, buf.data(), len, static_cast<off_t>(offset)) != static_cast<ssize_t>(len)) continue;
    if (chunk_matches(index, ByteView(buf.data(), len))) {
      done[index] = true;
      report_.bytes_resumed += len;
    }
  }
  scheduler_.emplace(chunks, done);
  return true;
}

void Fetcher::pump() {
  if (finished_) return;
  if (scheduler_->complete()) return complete();
  bool any_alive = false;
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    auto& p = peers_[i];
    if (!p.alive) continue;
    any_alive = true;
    while (p.in_flight < options_.window) {
      auto chunk = scheduler_->next_for(i);
      if (!chunk) break;
      auto offset = static_cast<std::uint64_t>(*chunk) * manifest_->chunk;
      auto len = std::min<std::uint64_t>(manifest_->chunk, manifest_->size - offset);
      std::uint32_t id = next_id_++;
      requests_[id] = Request{i, *chunk, {}};
      ++p.in_flight;
      p.link->send(Get{id, key_.str(), offset, len});
    }
  }
  if (!any_alive) fail("every provider failed (" + dropped_summary() + ")");
}

void Fetcher::finish_chunk(std::size_t peer, std::uint32_t id) {
  auto req = std::move(requests_[id]);
  requests_.erase(id);
  --peers_[peer].in_flight;
  if (!chunk_matches(req.chunk, req.buffer)) return drop(peer, "sent a chunk that fails verification");
  if (scheduler_->on_done(req.chunk)) {
    auto offset = static_cast<off_t>(req.chunk) * manifest_->chunk;
    if (::pwrite(part_fd_, req.buffer.data(), req.buffer.size(), offset) != static_cast<ssize_t>(req.buffer.size()))
      return fail("cannot write " + part_path_.string() + ": " + std::strerror(errno) + " (disk full?)");
    std::ofstream(part_path_.string() + ".chunks", std::ios::app) << req.chunk << "\n";
    report_.bytes_from[peers_[peer].node.hex()] += req.buffer.size();
    report_.bytes_fetched += req.buffer.size();
    if (progress_) {
      std::size_t alive = 0;
      for (const auto& p : peers_) alive += p.alive;
      progress_({report_.bytes_fetched + report_.bytes_resumed, manifest_->size, alive});
    }
  }
  pump();
}

bool Fetcher::chunk_matches(std::size_t chunk, ByteView bytes) const {
  auto digest = crypto::sha256(bytes);
  return std::equal(digest.begin(), digest.end(), manifest_->hashes.begin() + static_cast<std::ptrdiff_t>(chunk * 32));
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
  if (manifest_) asio::post(io_, [self = shared_from_this()] { self->pump(); });
}

void Fetcher::complete() {
  if (finished_) return;
  if (::fsync(part_fd_) != 0) return fail("cannot flush " + part_path_.string() + ": " + std::strerror(errno));
  if (key_.verifiable()) {
    auto digest = file_digest(part_path_, key_.hash());
    if (!digest) return fail(digest.error());
    if (*digest != key_.digest_hex()) {
      // Every chunk matched a manifest that does not match the key: the agreeing peers lied.
      ::unlink(part_path_.c_str());
      ::unlink((part_path_.string() + ".chunks").c_str());
      return fail("the assembled object does not match the key's hash; discarded");
    }
  }
  if (::rename(part_path_.c_str(), options_.destination.c_str()) != 0)
    return fail("cannot move the object into " + options_.destination.string() + ": " + std::strerror(errno));
  ::unlink((part_path_.string() + ".chunks").c_str());
  finished_ = true;
  for (auto& p : peers_)
    if (p.alive) p.link->close();
  done_(std::nullopt, report_);
}

void Fetcher::fail(const std::string& why) {
  if (finished_) return;
  finished_ = true;
  for (auto& p : peers_)
    if (p.alive) p.link->close();
  done_(why, report_);
}

}  // namespace annexswarm
