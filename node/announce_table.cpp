#include "node/announce_table.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <unordered_set>

#include <fmt/format.h>

#include "protocol/annex_key.hpp"

namespace annexswarm {
namespace {
constexpr auto kFirstRetry = std::chrono::seconds(5);
constexpr auto kMaxRetry = std::chrono::minutes(5);
}  // namespace

AnnounceTable::AnnounceTable(std::chrono::seconds refresh, std::chrono::seconds record_ttl)
    : refresh_(refresh), ttl_(record_ttl) {}

std::chrono::seconds AnnounceTable::refresh_for(std::string_view key) const {
  // Spread refreshes over the last 20% of the period, so keys announced together do
  // not all come due together again.
  auto spread = refresh_.count() / 5;
  if (spread == 0) return refresh_;
  auto h = std::hash<std::string_view>{}(key);
  return refresh_ - std::chrono::seconds(static_cast<std::int64_t>(h % static_cast<std::size_t>(spread)));
}

void AnnounceTable::schedule(const std::string& key, Entry& e, WallTime at) {
  e.due = at;
  queue_.push({at, key});
}

void AnnounceTable::mark_changed(const std::string& key, Entry& e, bool present, WallTime now) {
  if (e.present != present) {
    present_ += present ? 1 : 0;
    present_ -= present ? 0 : 1;
  }
  e.present = present;
  e.confirmed = false;
  e.failures = 0;
  ++e.seq;
  schedule(key, e, now);
}

AnnounceTable::Delta AnnounceTable::apply_scan(const std::vector<std::string>& keys, WallTime now) {
  Delta delta;
  for (const auto& key : keys) {
    auto [it, inserted] = entries_.try_emplace(key);
    if (inserted) {
      it->second.present = true;
      ++present_;
      schedule(key, it->second, now);
      ++delta.added;
    } else if (!it->second.present) {
      mark_changed(key, it->second, true, now);
      ++delta.added;
    }
  }
  for (auto& [key, e] : entries_) {
    if (!e.present) continue;
    if (std::binary_search(keys.begin(), keys.end(), key)) continue;
    mark_changed(key, e, false, now);
    ++delta.removed;
  }
  return delta;
}

std::vector<AnnounceJob> AnnounceTable::take_due(WallTime now, std::size_t max) {
  std::vector<AnnounceJob> jobs;
  while (jobs.size() < max && !queue_.empty() && queue_.top().at <= now) {
    Due item = queue_.top();
    queue_.pop();
    auto it = entries_.find(item.key);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    if (e.in_flight || e.due != item.at) continue;  // stale queue entry
    if (!e.present && e.confirmed) {
      // The tombstone has outlived every record it could contradict.
      entries_.erase(it);
      continue;
    }
    e.in_flight = true;
    ++in_flight_;
    jobs.push_back({item.key, e.present, e.seq});
  }
  return jobs;
}

void AnnounceTable::on_result(const AnnounceJob& job, bool ok, WallTime now) {
  auto it = entries_.find(job.key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (e.in_flight) {
    e.in_flight = false;
    --in_flight_;
  }
  if (job.seq != e.seq) {
    // Changed while in flight: the newer state is owed now.
    schedule(job.key, e, now);
    return;
  }
  if (ok) {
    e.failures = 0;
    e.confirmed = true;
    e.last_ok = now;
    schedule(job.key, e, now + (e.present ? refresh_for(job.key) : ttl_));
  } else {
    auto backoff = kFirstRetry * (1 << std::min<std::uint32_t>(e.failures, 6));
    ++e.failures;
    schedule(job.key, e, now + std::min<WallClock::duration>(backoff, kMaxRetry));
  }
}

std::optional<WallTime> AnnounceTable::next_due() {
  while (!queue_.empty()) {
    const Due& top = queue_.top();
    auto it = entries_.find(top.key);
    if (it != entries_.end() && !it->second.in_flight && it->second.due == top.at) return top.at;
    queue_.pop();
  }
  return std::nullopt;
}

void AnnounceTable::retry_failed(WallTime now) {
  for (auto& [key, e] : entries_) {
    if (e.failures == 0 || e.in_flight) continue;
    e.failures = 0;
    schedule(key, e, now);
  }
}

std::size_t AnnounceTable::confirmed_count() const {
  std::size_t n = 0;
  for (const auto& [key, e] : entries_) n += e.present && e.confirmed;
  return n;
}

bool AnnounceTable::has_present(std::string_view key) const {
  auto it = entries_.find(std::string(key));
  return it != entries_.end() && it->second.present;
}

std::string AnnounceTable::save() const {
  std::string out;
  out.reserve(entries_.size() * 96);
  for (const auto& [key, e] : entries_) {
    auto ok_unix = e.confirmed
                       ? std::chrono::duration_cast<std::chrono::seconds>(e.last_ok.time_since_epoch()).count()
                       : 0;
    out += fmt::format("{} {} {} {}\n", e.present ? 'P' : 'D', e.seq, ok_unix, key);
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
    if (line.size() < 7 || (line[0] != 'P' && line[0] != 'D') || line[1] != ' ') return bad();
    std::uint16_t seq = 0;
    std::int64_t ok_unix = 0;
    const char* p = line.data() + 2;
    const char* end = line.data() + line.size();
    auto r1 = std::from_chars(p, end, seq);
    if (r1.ec != std::errc() || r1.ptr == end || *r1.ptr != ' ') return bad();
    auto r2 = std::from_chars(r1.ptr + 1, end, ok_unix);
    if (r2.ec != std::errc() || r2.ptr == end || *r2.ptr != ' ') return bad();
    std::string key(r2.ptr + 1, end);
    if (!AnnexKey::parse(key)) return bad();
    Entry e;
    e.seq = seq;
    e.present = line[0] == 'P';
    e.confirmed = ok_unix > 0;
    e.last_ok = WallTime(std::chrono::seconds(ok_unix));
    WallTime due = now;
    if (e.confirmed) due = std::max(now, e.last_ok + (e.present ? table.refresh_for(key) : record_ttl));
    auto [it, inserted] = table.entries_.try_emplace(key, e);
    if (!inserted) return bad();
    table.present_ += e.present;
    table.schedule(it->first, it->second, due);
  }
  return table;
}

}  // namespace annexswarm
