#include "node/announce_table.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace annexswarm {
namespace {
constexpr auto kFirstRetry = std::chrono::seconds(5);
constexpr auto kMaxRetry = std::chrono::minutes(5);

// FNV-1a over the tags: stable across builds, used only to notice a changed bucket
// after a restart.
std::uint64_t digest_of(const std::vector<std::uint64_t>& tags) {
  std::uint64_t h = 1469598103934665603ull;
  for (auto t : tags)
    for (int b = 0; b < 8; ++b) {
      h ^= (t >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
  return h;
}
}  // namespace

AnnounceTable::AnnounceTable(std::chrono::seconds refresh, std::chrono::seconds record_ttl)
    : refresh_(refresh), ttl_(record_ttl) {}

std::chrono::seconds AnnounceTable::refresh_for(std::uint32_t bucket) const {
  // Spread refreshes over the last 20% of the period, so buckets announced together do
  // not all come due together again.
  auto spread = refresh_.count() / 5;
  if (spread == 0) return refresh_;
  return refresh_ - std::chrono::seconds((bucket * 2654435761u) % static_cast<std::uint64_t>(spread));
}

void AnnounceTable::schedule(std::uint32_t bucket, Entry& e, WallTime at) {
  e.due = at;
  queue_.push({at, bucket});
}

void AnnounceTable::set_confirmed(Entry& e, bool confirmed) {
  if (e.confirmed) confirmed_keys_ -= e.tags.size();
  e.confirmed = confirmed;
  if (e.confirmed) confirmed_keys_ += e.tags.size();
}

void AnnounceTable::set_tags(Entry& e, std::vector<std::uint64_t> tags) {
  set_confirmed(e, false);
  keys_ -= e.tags.size();
  e.tags = std::move(tags);
  keys_ += e.tags.size();
  e.digest = digest_of(e.tags);
}

void AnnounceTable::update_bucket(std::uint32_t bucket, std::vector<std::uint64_t> tags, WallTime now, Delta& delta) {
  auto [it, inserted] = buckets_.try_emplace(bucket);
  Entry& e = it->second;
  auto digest = digest_of(tags);
  if (!inserted && e.digest == digest) {
    // Unchanged (also after a restart, when only the digest was saved).
    if (e.tags.empty() && !tags.empty()) {
      bool confirmed = e.confirmed;
      set_tags(e, std::move(tags));
      set_confirmed(e, confirmed);
    }
    return;
  }
  std::vector<std::uint64_t> gone, fresh;
  std::set_difference(e.tags.begin(), e.tags.end(), tags.begin(), tags.end(), std::back_inserter(gone));
  std::set_difference(tags.begin(), tags.end(), e.tags.begin(), e.tags.end(), std::back_inserter(fresh));
  delta.removed += gone.size();
  delta.added += fresh.size();
  ++delta.buckets;
  if (!inserted) ++e.seq;
  e.failures = 0;
  set_tags(e, std::move(tags));
  schedule(bucket, e, now + settle_);
}

AnnounceTable::Delta AnnounceTable::apply_scan(std::vector<KeyIndex> keys, WallTime now) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  Delta delta;
  std::vector<bool> seen(kKeyBuckets, false);
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    std::vector<std::uint64_t> tags;
    while (j < keys.size() && keys[j].bucket == keys[i].bucket) tags.push_back(keys[j++].tag);
    seen[keys[i].bucket] = true;
    update_bucket(keys[i].bucket, std::move(tags), now, delta);
    i = j;
  }
  std::vector<std::uint32_t> emptied;
  for (const auto& [bucket, e] : buckets_)
    if (!seen[bucket]) emptied.push_back(bucket);
  for (auto bucket : emptied) update_bucket(bucket, {}, now, delta);
  return delta;
}

AnnounceTable::Delta AnnounceTable::apply_change(const KeyIndex& key, bool present, WallTime now) {
  Delta delta;
  std::vector<std::uint64_t> tags;
  if (auto it = buckets_.find(key.bucket); it != buckets_.end()) tags = it->second.tags;
  auto pos = std::lower_bound(tags.begin(), tags.end(), key.tag);
  bool there = pos != tags.end() && *pos == key.tag;
  if (there == present) return delta;
  if (present) tags.insert(pos, key.tag);
  else tags.erase(pos);
  update_bucket(key.bucket, std::move(tags), now, delta);
  return delta;
}

std::vector<AnnounceJob> AnnounceTable::take_due(WallTime now, std::size_t max) {
  std::vector<AnnounceJob> jobs;
  while (jobs.size() < max && !queue_.empty() && queue_.top().at <= now) {
    Due item = queue_.top();
    queue_.pop();
    auto it = buckets_.find(item.bucket);
    if (it == buckets_.end()) continue;
    Entry& e = it->second;
    if (e.in_flight || e.due != item.at) continue;  // stale queue entry
    if (e.tags.empty() && (e.confirmed || !e.on_dht)) {
      // The empty record has outlived every record it could contradict (or there never
      // was one: a bucket whose keys came and went before its first put).
      buckets_.erase(it);
      continue;
    }
    if (e.put_known && e.digest == e.put_digest && now < e.last_ok + refresh_for(item.bucket)) {
      // Changed and changed back: the record out there says this already.
      set_confirmed(e, true);
      schedule(item.bucket, e, e.last_ok + refresh_for(item.bucket));
      continue;
    }
    e.on_dht = true;
    e.sent_digest = e.digest;
    e.in_flight = true;
    ++in_flight_;
    jobs.push_back({item.bucket, e.seq, e.tags});
  }
  return jobs;
}

void AnnounceTable::on_result(const AnnounceJob& job, bool ok, WallTime now) {
  auto it = buckets_.find(job.bucket);
  if (it == buckets_.end()) return;
  Entry& e = it->second;
  if (e.in_flight) {
    e.in_flight = false;
    --in_flight_;
  }
  if (ok) {
    e.put_known = true;
    e.put_digest = e.sent_digest;
    e.last_ok = now;
  }
  if (job.seq != e.seq) {
    // Changed while in flight: the newer state is owed now.
    schedule(job.bucket, e, now);
    return;
  }
  if (ok) {
    e.failures = 0;
    e.last_ok = now;
    set_confirmed(e, true);
    schedule(job.bucket, e, now + (e.tags.empty() ? ttl_ : refresh_for(job.bucket)));
  } else {
    auto backoff = kFirstRetry * (1 << std::min<std::uint32_t>(e.failures, 6));
    ++e.failures;
    schedule(job.bucket, e, now + std::min<WallClock::duration>(backoff, kMaxRetry));
  }
}

std::optional<WallTime> AnnounceTable::next_due() {
  while (!queue_.empty()) {
    const Due& top = queue_.top();
    auto it = buckets_.find(top.bucket);
    if (it != buckets_.end() && !it->second.in_flight && it->second.due == top.at) return top.at;
    queue_.pop();
  }
  return std::nullopt;
}

void AnnounceTable::retry_failed(WallTime now) {
  for (auto& [bucket, e] : buckets_) {
    if (e.failures == 0 || e.in_flight) continue;
    e.failures = 0;
    schedule(bucket, e, now);
  }
}

bool AnnounceTable::holds(const KeyIndex& key) const {
  auto it = buckets_.find(key.bucket);
  return it != buckets_.end() && std::binary_search(it->second.tags.begin(), it->second.tags.end(), key.tag);
}

std::string AnnounceTable::save() const {
  std::string out;
  out.reserve(buckets_.size() * 48);
  for (const auto& [bucket, e] : buckets_) {
    auto ok_unix = e.confirmed
                       ? std::chrono::duration_cast<std::chrono::seconds>(e.last_ok.time_since_epoch()).count()
                       : 0;
    out += fmt::format("B {} {} {} {:016x}\n", bucket, e.seq, ok_unix, e.digest);
  }
  return out;
}

Result<AnnounceTable> AnnounceTable::load(std::string_view text, std::chrono::seconds refresh,
                                          std::chrono::seconds record_ttl, WallTime now) {
  AnnounceTable table(refresh, record_ttl);
  std::size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (line.empty()) continue;
    auto bad = [&] { return Error{fmt::format("announce state line {} is malformed", line_no)}; };
    if (line.size() < 2 || line[0] != 'B' || line[1] != ' ') return bad();
    const char* p = line.data() + 2;
    const char* end = line.data() + line.size();
    std::uint32_t bucket = 0;
    std::uint16_t seq = 0;
    std::int64_t ok_unix = 0;
    std::uint64_t digest = 0;
    auto field = [&](auto& out, int base) {
      auto r = std::from_chars(p, end, out, base);
      if (r.ec != std::errc()) return false;
      p = r.ptr;
      if (p != end) {
        if (*p != ' ') return false;
        ++p;
      }
      return true;
    };
    if (!field(bucket, 10) || !field(seq, 10) || !field(ok_unix, 10) || !field(digest, 16) || p != end)
      return bad();
    if (bucket >= kKeyBuckets || ok_unix < 0) return bad();
    auto [it, inserted] = table.buckets_.try_emplace(bucket);
    if (!inserted) return bad();
    Entry& e = it->second;
    e.seq = seq;
    e.digest = digest;
    e.last_ok = WallTime(std::chrono::seconds(ok_unix));
    // Tags are unknown until the first scan; confirmed is restored then, when they match.
    e.confirmed = ok_unix > 0;
    e.on_dht = true;
    e.put_known = e.confirmed;
    e.put_digest = digest;
    table.schedule(bucket, e, e.confirmed ? std::max(now, e.last_ok + table.refresh_for(bucket)) : now);
  }
  return table;
}

}  // namespace annexswarm
