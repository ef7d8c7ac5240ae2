"""Lua scripts of the Redis index: every multi-key change runs server-side, atomically.

Each script is the shared helpers (key names, record parsing, linear-hashed
shards, story moves, article put/delete) followed by a short body.  ARGV[1]
is always the namespace and the client's epoch (``"ns epoch"``, see
:mod:`~dedup.index.redis_keys`: each script starts with ``check_epoch``),
ARGV[2] and ARGV[3] the LSH ``bands`` and ``rows``:
the scripts compute bucket fields from the stored record themselves, so
deleting an article needs no client-side read first.  KEYS[1] is always
``{ns}:meta``: it names the (single) slot the script works in, which is how
a Redis Cluster client routes the call.
"""

from __future__ import annotations

from .redis_lua_lib import HELPERS as _HELPERS
from .redis_lua_lib import LOAD, NODAY, SHARDS0

__all__ = ["LOAD", "NODAY", "SHARDS0", "SCRIPTS"]


# ARGV: ns, bands, rows, id, record
PUT = _HELPERS + r"""
check_epoch(true)
begin_write()
put(ARGV[4], ARGV[5])
finish()
return 1
"""

# ARGV: ns, bands, rows, id -> {its handle (decimal), the old record}, false if absent
DELETE = _HELPERS + r"""
check_epoch(false)
local h = handle_get(ARGV[4])
if not h then return false end
begin_write()
local blob = del_article(ARGV[4])
finish()
return blob and {h, blob}
"""

# ARGV: ns, bands, rows, id, id, ... -> how many of them were stored (all are gone now).  Retention's
# deletes, many per call: each story they leave with two members or more owes a re-split (K_SPLIT, see
# del_article), which the client then writes once per story instead of once per deleted article
DELETE_MANY = _HELPERS + r"""
check_epoch(false)
local n = 0
for i = 4, #ARGV do
  if handle_get(ARGV[i]) then
    if n == 0 then begin_write() end
    del_article(ARGV[i])
    n = n + 1
  end
end
if n > 0 then finish() end
return n
"""

# ARGV: ns, bands, rows, id, id, ... -> {handle (decimal), record} of each (false where absent)
RECORDS = _HELPERS + r"""
check_epoch(false)
local out = {}
for i = 4, #ARGV do out[#out + 1] = record_of(ARGV[i]) end
return out
"""

# ARGV: ns, bands, rows, id, id, ... -> handle of each (decimal; false where absent)
HANDLES = _HELPERS + r"""
check_epoch(false)
local out = {}
for i = 4, #ARGV do out[#out + 1] = handle_get(ARGV[i]) end
return out
"""

# ARGV: ns, bands, rows, id, id, ... -> story of each ('' where absent or in no story)
STORY_OF = _HELPERS + r"""
check_epoch(false)
local out = {}
for i = 4, #ARGV do
  local hb = handle_of(ARGV[i])
  local v = hb and info_get(hb)
  out[#out + 1] = v and info_story(v) or ''
end
return out
"""

# ARGV: ns, bands, rows, 4-byte sentence hash, ... -> counts (each the sum over the publication periods'
# families, see efam)
SENT_COUNTS = _HELPERS + r"""
check_epoch(false)
local fams = stored_fams('e:')
for _, fam in ipairs(fams) do lh_want(fam) end
local out = {}
for i = 4, #ARGV do
  local f, n = ARGV[i], 0
  for _, fam in ipairs(fams) do n = n + tonumber(redis.call('HGET', shard(fam, f), f) or 0) end
  out[#out + 1] = n
end
return out
"""

# ARGV: ns, bands, rows, story, id, id, ...
SET_STORY = _HELPERS + r"""
check_epoch(true)
local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
begin_write()
set_story(ARGV[4], ids)
finish()
return 1
"""

# ARGV: ns, bands, rows, story -> {version ('' when the story does not exist), member, ...}
# (the version is the story's score in the stories zset: the clock tick of its last change)
STORY_SNAPSHOT = _HELPERS + r"""
check_epoch(false)
local out = {redis.call('ZSCORE', K_STORIES, ARGV[4]) or ''}
for _, m in ipairs(redis.call('HKEYS', K_story(ARGV[4]))) do out[#out + 1] = m end
return out
"""

# ARGV: ns, bands, rows, story, version ('*': any), then per part: new story, count, id, ... -> 1, or 0
# when the story's version moved since STORY_SNAPSHOT (nothing written; the caller reads and splits again)
RESPLIT = _HELPERS + r"""
check_epoch(true)
if ARGV[5] ~= '*' and (redis.call('ZSCORE', K_STORIES, ARGV[4]) or '') ~= ARGV[5] then return 0 end
begin_write()
local plans, i = {}, 6
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  local ids = {}
  for j = 1, n do ids[j] = ARGV[i + 1 + j] end
  plans[#plans + 1] = plan_story(ARGV[i], ids)
  i = i + 2 + n
end
set_stories(plans)  -- all parts or none, also when a moving slot stops the script
redis.call('HDEL', K_SPLIT, ARGV[4])  -- the story's re-split is written (see del_article)
finish()
return 1
"""

# ARGV: ns, bands, rows, fields, day ('' = undated), window, id, mode[, record]
# fields: the article's bucket fields, back to back (RedisIndex._fields: u16 band + the band's raw value)
# mode 0 answers the ids of the candidates (except `id`).
# mode 2 answers {stored (0/1), buckets, version, #own, own..., handle, story, handle, story, ...}:
# whether `id` is already stored, the values of its 32 buckets in its own period (pack_vals, followed by
# the digest of what it found in other periods) and the write version
# (INGEST writes with those values, or re-checks against them when the version moved), the members of a story named `id` (the decider's fresh-story-id check), and the
# candidates as 4-byte handles (the client keeps id and signature by handle) with their stories.
# mode 3 is mode 2 plus the article's record: when the article is not stored, has no candidate and
# no story is named after it, the decision can only be "new story named after it", so the script
# stores it at once and answers {2, handle}: one round trip for the whole ingest.
# mode 4 is mode 3 plus the client's decision on the candidates it expected (redis_mirror): ARGV continues
# story, is_new (1/0), nmerged, merged..., ncand, (handle, story)...; when the script finds exactly those
# candidates in those stories, the id is not stored and no story is named after it (nor after a new story),
# it writes the decision as INGEST would and answers {2, handle}: one round trip.  Else it answers as mode 2.
FIND = _HELPERS + r"""
-- modes 3 and 4 may write, and with a 'd' (3d, 4d) defer their splits (see DEFER); 'many' (modes 0 and 2)
-- and the others only read
check_epoch(ARGV[4] ~= 'many' and (string.sub(ARGV[8], 1, 1) == '3' or string.sub(ARGV[8], 1, 1) == '4'))
local MODE = ARGV[8]
if ARGV[4] ~= 'many' and (MODE == '3d' or MODE == '4d') then DEFER = true; MODE = string.sub(MODE, 1, 1) end
-- mode 4's decision, from ARGV[i] on: story, is_new, merged, and whether `found` is what the client expected
local function proposal(i, found)
  local story, is_new = ARGV[i], ARGV[i + 1] == '1'
  local nmerged = tonumber(ARGV[i + 2])
  local merged = {}
  for j = 1, nmerged do merged[j] = ARGV[i + 2 + j] end
  i = i + 3 + nmerged
  local ncand = tonumber(ARGV[i])
  local same = #found == ncand
  if same then
    local expected = {}
    for j = 0, ncand - 1 do expected[ARGV[i + 1 + 2 * j]] = ARGV[i + 2 + 2 * j] end
    for _, c in ipairs(found) do
      if expected[c[1]] ~= info_story(c[2]) then same = false; break end
    end
  end
  return story, is_new, merged, same
end
local function answer(packed, day_arg, window, id, mode, blob)
  local fields = split_fields(packed)
  local day = nil
  if day_arg ~= '' then day = tonumber(day_arg) end
  if mode == '3' or mode == '4' then want_write_fams(day_tag(day)) end
  local own_hb = handle_of(id)
  local found, vals, others = find(fields, day, window, own_hb)
  if mode == '0' then
    local ids = {}
    for _, c in ipairs(found) do
      local d = info_day(c[2])
      if not day or not d or math.abs(d - day) <= window then
        local b = redis.call('GET', K_article(string.format('%d', struct.unpack('<I4', c[1]))))
        if b then ids[#ids + 1] = rec(b).id end
      end
    end
    return ids
  end
  local own = redis.call('HKEYS', K_story(id))
  if mode == '3' and not own_hb and #found == 0 and #own == 0 then
    begin_write()
    local hb, info = put(id, blob, vals, true, id, fields)
    set_story(id, {id}, {[id] = {hb, info}})
    finish()
    return {2, hb, unpack(OWED)}
  end
  if mode == '4' and not own_hb and #own == 0 then
    local story, is_new, merged, same = proposal(10, found)
    if same and (not is_new or story == id or redis.call('EXISTS', K_story(story)) == 0) then
      begin_write()
      local hb, info = put(id, blob, vals, true, story, fields)
      join_story(id, hb, info, story, merged)
      finish()
      return {2, hb, unpack(OWED)}
    end
  end
  local out = {own_hb and 1 or 0, pack_vals(fields, vals, others), version(), #own}
  for _, v in ipairs(own) do out[#out + 1] = v end
  for _, c in ipairs(found) do
    out[#out + 1] = c[1]
    out[#out + 1] = info_story(c[2])
  end
  return out
end
if ARGV[4] == 'many' then
  -- ARGV: ns, bands, rows, 'many', window, mode (0 or 2), (fields, day, id)...: one answer per article
  local out = {}
  for i = 7, #ARGV, 3 do out[#out + 1] = answer(ARGV[i], ARGV[i + 1], tonumber(ARGV[5]), ARGV[i + 2], ARGV[6]) end
  return out
end
return answer(ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], MODE, ARGV[9])
"""

# ARGV: ns, bands, rows, window, count, then per article:
#       id, record, fields, story, is_new, nmerged, merged..., version, buckets, ncand, (handle, story-or-'')...
# Writes the articles in order.  Before each one it re-checks what the client
# decided on and stops at the first that changed.  When the write version is
# still the one FIND answered, nothing was written since that read but this
# call's own articles, which the client decided with, so there is nothing to
# re-check, and the buckets are what FIND read (updated by this call's own
# writes): no bucket read at all.  Otherwise: the buckets must hold what FIND saw plus
# only articles this call wrote, the candidates must still be in the stories
# the client assumed (after this call's own moves), and a new story id must
# still be free.  Returns {articles written, 'ok' | 'conflict' | 'exists', the write version before
# this call, handles of the written articles...}; the client reads and decides the rest again.
# (That version tells a pipelined bulk load whether anything but this call wrote between its next
# chunk's FIND, sent just before this call, and that chunk's INGEST: see redis_bulk.)
# Comparing the buckets' handles instead of re-reading candidates keeps the
# re-check to the 32 bucket reads, without fetching any record.
INGEST = _HELPERS + r"""
check_epoch(true)
local window = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local v0 = version()
begin_write()
local i = 6
local mine, written = {}, {}
for done = 0, count - 1 do
  local id, blob, packed, story, is_new = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4] == '1'
  i = i + 5
  local nmerged = tonumber(ARGV[i]); local merged = {}
  for j = 1, nmerged do merged[j] = ARGV[i + j] end
  i = i + nmerged + 1
  local seen_version, buckets = ARGV[i], ARGV[i + 1]
  i = i + 2
  local ncand = tonumber(ARGV[i]); local expected = {}
  for j = 0, ncand - 1 do expected[ARGV[i + 1 + 2 * j]] = ARGV[i + 2 + 2 * j] end
  i = i + 2 * ncand + 1

  local tag = day_tag(rec_day(blob))
  want_write_fams(tag)
  if handle_exists(id) then finish(); return {done, 'exists', v0, unpack(written)} end
  local fields = split_fields(packed)
  local seen, others = unpack_vals(fields, buckets)
  local vals = {}
  if seen_version == v0 then
    local bv = bv_of(bfam(tag))
    for _, f in ipairs(fields) do
      local w = bv[f]
      if w == nil then w = seen[f] end
      vals[f] = w
    end
  else
    local fams = read_fams(tag, window)
    vals = bucket_values(fams[1], fields)
    local ok = digest(handles_in(fields, vals), mine) == digest(handles_in(fields, seen), {})
      and others_digest(fams, fields, mine) == others
    if ok then
      for hb, want in pairs(expected) do
        local v = info_get(hb)
        if not v or info_story(v) ~= want then ok = false; break end
      end
    end
    if ok and is_new and redis.call('EXISTS', K_story(story)) == 1 then ok = false end
    if not ok then finish(); return {done, 'conflict', v0, unpack(written)} end
  end

  local hb, info = put(id, blob, vals, true, story, fields)
  mine[hb] = true
  written[#written + 1] = hb
  join_story(id, hb, info, story, merged)
end
finish()
return {count, 'ok', v0, unpack(written)}
"""

# ARGV: ns, bands, rows, family, ... -> 1.  The splits a streamed article's FIND deferred (see DEFER in
# redis_lua_lib): the client sends it right after FIND's answer and reads its answer only before its
# next call.  Splitting moves no field out of where the family's state
# says it is, so it needs no write version (INGEST's checks compare bucket values, which it leaves as they
# are).  An emptied namespace has no family left to split; in another epoch check_epoch refuses it (and
# the client drops that answer: its next call learns of the epoch).
MAINTAIN = _HELPERS + r"""
check_epoch(false)
for i = 4, #ARGV do lh_want(ARGV[i]) end
for i = 4, #ARGV do
  local s = lh(ARGV[i])
  if s.n > 0 then lh_split(ARGV[i], s, LOAD) end
end
lh_flush()
return 1
"""

# Not one of SCRIPTS (it takes none of their arguments): KEYS[1] = {ns}:meta, ARGV: fingerprint, a new
# epoch, a random handle to start from -> {fingerprint, epoch} as stored.  Claims an empty namespace (one
# without meta) for these settings and this epoch, atomically, or answers who claimed it (RedisIndex._claim).
# Handles of a new epoch start at a random point: a band write of the spread layout held up for longer than
# the sweep (it runs in another slot, so no epoch check can stop it) would otherwise find the handles of
# the previous epoch given out again.
CLAIM = r"""
redis.call('HSETNX', KEYS[1], 'fingerprint', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2]) == 1 then redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'seq0', ARGV[3]) end
return redis.call('HMGET', KEYS[1], 'fingerprint', 'epoch')
"""

SCRIPTS = ("PUT", "DELETE", "DELETE_MANY", "RECORDS", "HANDLES", "STORY_OF", "SENT_COUNTS", "SET_STORY", "STORY_SNAPSHOT", "RESPLIT", "FIND",
           "INGEST", "MAINTAIN")
