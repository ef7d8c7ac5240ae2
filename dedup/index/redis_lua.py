"""Lua scripts of the Redis index: every multi-key change runs server-side, atomically.

Each script is the shared helpers (key names, record parsing, linear-hashed
shards, story moves, article put/delete) followed by a short body.  ARGV[1]
is always the namespace, ARGV[2] and ARGV[3] the LSH ``bands`` and ``rows``:
the scripts compute bucket fields from the stored record themselves, so
deleting an article needs no client-side read first.  KEYS[1] is always
``{ns}:meta``: it names the (single) slot the script works in, which is how
a Redis Cluster client routes the call.
"""

from __future__ import annotations

from .codec import HEADER_SIZE
from .redis_keys import LUA_KEY_HELPERS

# Linear hashing: start with SHARDS0 shards per family and split one shard
# whenever the family holds more than LOAD fields per shard on average.  An
# unsplit shard holds up to ~2 x LOAD, so LOAD = 40 keeps shards under
# Redis's default hash-max-listpack-entries (128), where a hash is a compact
# listpack (~12 bytes per bucket entry) instead of a hash table (~70).
SHARDS0 = 64
LOAD = 40

_HELPERS = LUA_KEY_HELPERS + r"""
local BANDS = tonumber(ARGV[2])
local ROWS = tonumber(ARGV[3])
local HDR = %(hdr)d
local S0 = %(s0)d
local LOAD = %(load)d

-- the parts of a record the scripts need (layout: dedup/index/codec.py)
local function rec(blob)
  local _, fl, day, nm, nt, nsh, nh, lid = struct.unpack('<BBi4I4I4I4I4I4', blob)
  local r = {}
  if fl %% 2 == 1 then r.day = day end
  r.m = string.sub(blob, HDR + 1, HDR + 4 * nm)
  r.sig_end = HDR + 4 * (nm + 2 * nt + nsh)
  r.h = string.sub(blob, r.sig_end + 1, r.sig_end + 4 * nh)
  local id_at = r.sig_end + 4 * nh + 1
  r.id = string.sub(blob, id_at, id_at + lid - 1)
  return r
end

-- linear hashing of the families 'b' (buckets) and 'e' (sentence counts)
local LH = {}
local function lh(fam)
  local s = LH[fam]
  if not s then
    local v = redis.call('HMGET', K_LH, fam .. 'l', fam .. 'p', fam .. 'n')
    s = {l = tonumber(v[1]) or 0, p = tonumber(v[2]) or 0, n = tonumber(v[3]) or 0, dirty = false}
    LH[fam] = s
  end
  return s
end

-- a field's hash: its last 4 bytes, little-endian (a uniform minhash or sentence hash)
local function fh(f)
  local a, b, c, d = string.byte(f, #f - 3, #f)
  return a + b * 256 + c * 65536 + d * 16777216
end

local function shard(fam, f)
  local s = lh(fam)
  local m = S0 * 2 ^ s.l
  local h = fh(f)
  local i = h %% m
  if i < s.p then i = h %% (2 * m) end
  return K_shard(fam, i)
end

-- one field more (+1) or less (-1) in a family; splits shards as it grows
local function lh_count(fam, delta)
  local s = lh(fam)
  s.n = s.n + delta
  s.dirty = true
  while delta > 0 and s.n > LOAD * (S0 * 2 ^ s.l + s.p) do
    local m = S0 * 2 ^ s.l
    local src, dst = K_shard(fam, s.p), K_shard(fam, s.p + m)
    local all = redis.call('HGETALL', src)
    for i = 1, #all, 2 do
      if fh(all[i]) %% (2 * m) ~= s.p then
        redis.call('HSET', dst, all[i], all[i + 1])
        redis.call('HDEL', src, all[i])
      end
    end
    s.p = s.p + 1
    if s.p == m then s.l = s.l + 1; s.p = 0 end
  end
end

-- every write script ends with this: persist the shard state (dropped when a family empties)
local function lh_flush()
  for fam, s in pairs(LH) do
    if s.dirty then
      if s.n <= 0 then
        redis.call('HDEL', K_LH, fam .. 'l', fam .. 'p', fam .. 'n')
      else
        redis.call('HSET', K_LH, fam .. 'l', s.l, fam .. 'p', s.p, fam .. 'n', s.n)
      end
      s.dirty = false
    end
  end
end

-- bucket fields of a minhash: u16 band + the band's raw value
local function band_fields(m)
  local out, w = {}, ROWS * 4
  for i = 0, BANDS - 1 do
    out[#out + 1] = struct.pack('<I2', i) .. string.sub(m, i * w + 1, (i + 1) * w)
  end
  return out
end

-- known: the field's current value when the caller just read it (false: absent), nil: read it
local function bucket_add(f, hb, known)
  local k = shard('b', f)
  local v = known
  if v == nil then v = redis.call('HGET', k, f) end
  if v then
    redis.call('HSET', k, f, v .. hb)
  else
    redis.call('HSET', k, f, hb)
    lh_count('b', 1)
  end
end

local function bucket_remove(f, hb)
  local k = shard('b', f)
  local v = redis.call('HGET', k, f)
  if not v then return end
  local keep = {}
  for j = 1, #v, 4 do
    local x = string.sub(v, j, j + 3)
    if x ~= hb then keep[#keep + 1] = x end
  end
  if #keep == 0 then
    redis.call('HDEL', k, f)
    lh_count('b', -1)
  else
    redis.call('HSET', k, f, table.concat(keep))
  end
end

-- distinct 4-byte sentence hashes of a '<u4' byte string
local function sent_fields(h)
  local out, seen = {}, {}
  for i = 1, #h - 3, 4 do
    local s = string.sub(h, i, i + 3)
    if not seen[s] then seen[s] = true; out[#out + 1] = s end
  end
  return out
end

local function sent_add(f)
  if redis.call('HINCRBY', shard('e', f), f, 1) == 1 then lh_count('e', 1) end
end

local function sent_remove(f)
  local k = shard('e', f)
  if redis.call('HINCRBY', k, f, -1) <= 0 then
    redis.call('HDEL', k, f)
    lh_count('e', -1)
  end
end

local function touch(story)
  redis.call('ZADD', K_STORIES, redis.call('INCR', K_CLOCK), story)
end

local function leave(story, ids)
  local k = K_story(story)
  for _, id in ipairs(ids) do redis.call('HDEL', k, id) end
  if redis.call('EXISTS', k) == 1 then
    touch(story)
  else
    redis.call('ZREM', K_STORIES, story)
    if redis.call('ZCARD', K_STORIES) == 0 then redis.call('DEL', K_CLOCK) end
  end
end

local function set_story(story, ids)
  local by_old, order = {}, {}
  for _, id in ipairs(ids) do
    local old = redis.call('HGET', K_STORY_OF, id)
    if old and old ~= story then
      if not by_old[old] then by_old[old] = {}; order[#order + 1] = old end
      table.insert(by_old[old], id)
    end
  end
  for _, old in ipairs(order) do leave(old, by_old[old]) end
  local k = K_story(story)
  for _, id in ipairs(ids) do
    redis.call('HSET', k, id, '')
    redis.call('HSET', K_STORY_OF, id, story)
  end
  touch(story)
end

local function record_of(id)
  local h = redis.call('HGET', K_HANDLES, id)
  if not h then return false end
  return redis.call('GET', K_article(h))
end

-- removes an article everywhere; returns its record (false if absent)
local function del_article(id)
  local h = redis.call('HGET', K_HANDLES, id)
  if not h then return false end
  local ak = K_article(h)
  local blob = redis.call('GET', ak)
  redis.call('DEL', ak)
  redis.call('HDEL', K_HANDLES, id)
  if blob then
    local r = rec(blob)
    local hb = struct.pack('<I4', tonumber(h))
    for _, f in ipairs(band_fields(r.m)) do bucket_remove(f, hb) end
    for _, f in ipairs(sent_fields(r.h)) do sent_remove(f) end
  end
  redis.call('ZREM', K_DAYS, id)
  if redis.call('DECR', K_COUNT) <= 0 then redis.call('DEL', K_COUNT, K_SEQ) end
  local story = redis.call('HGET', K_STORY_OF, id)
  if story then
    redis.call('HDEL', K_STORY_OF, id)
    leave(story, {id})
  end
  return blob or false
end

-- vals: optional field -> current value (false if absent) of this record's buckets, read just before
local function put(id, blob, vals)
  vals = vals or {}
  if redis.call('HEXISTS', K_HANDLES, id) == 1 then del_article(id) end
  local h = redis.call('INCR', K_SEQ)
  local hs = string.format('%%d', h)
  redis.call('SET', K_article(hs), blob)
  redis.call('HSET', K_HANDLES, id, hs)
  local r = rec(blob)
  local hb = struct.pack('<I4', h)
  for _, f in ipairs(band_fields(r.m)) do bucket_add(f, hb, vals[f]) end
  for _, f in ipairs(sent_fields(r.h)) do sent_add(f) end
  redis.call('INCR', K_COUNT)
  if r.day then redis.call('ZADD', K_DAYS, r.day, id) end
  return hb
end

-- the distinct handles (4-byte strings) in the buckets of minhash m, and field -> value read
local function bucket_handles(m)
  local hs, seen, vals = {}, {}, {}
  for _, f in ipairs(band_fields(m)) do
    local v = redis.call('HGET', shard('b', f), f)
    vals[f] = v
    if v then
      for j = 1, #v, 4 do
        local hb = string.sub(v, j, j + 3)
        if not seen[hb] then seen[hb] = true; hs[#hs + 1] = hb end
      end
    end
  end
  return hs, vals
end

-- what the buckets of m hold, as one comparable string (sorted handles), leaving out `mine`:
-- handles never get reused for another record, so an equal digest means equal candidates
local function digest(hs, mine)
  local keep = {}
  for _, hb in ipairs(hs) do if not mine[hb] then keep[#keep + 1] = hb end end
  table.sort(keep)
  return table.concat(keep)
end

-- ids sharing a band with minhash m, within the window of day (nil: undated), except `exclude`;
-- with_sigs adds each one's signature bytes (or, when it is 'handles', its 4-byte
-- handle, for a client that caches signatures) and story: id, sig, story, ...
-- Also returns the digest of the buckets.
local function find(m, day, window, exclude, with_sigs)
  local hs = bucket_handles(m)
  local out = {}
  for _, hb in ipairs(hs) do
    local blob = redis.call('GET', K_article(string.format('%%d', struct.unpack('<I4', hb))))
    if blob then
      local r = rec(blob)
      local ok = r.id ~= exclude
      if ok and day and r.day then ok = math.abs(r.day - day) <= window end
      if ok then
        out[#out + 1] = r.id
        if with_sigs then
          if with_sigs == 'handles' then out[#out + 1] = hb else out[#out + 1] = string.sub(blob, 1, r.sig_end) end
          out[#out + 1] = redis.call('HGET', K_STORY_OF, r.id) or ''
        end
      end
    end
  end
  return out, digest(hs, {})
end
""" % {"hdr": HEADER_SIZE, "s0": SHARDS0, "load": LOAD}

# ARGV: ns, bands, rows, id, record
PUT = _HELPERS + r"""
put(ARGV[4], ARGV[5])
lh_flush()
return 1
"""

# ARGV: ns, bands, rows, id -> the old record (false if absent)
DELETE = _HELPERS + r"""
local blob = del_article(ARGV[4])
lh_flush()
return blob
"""

# ARGV: ns, bands, rows, id, id, ... -> records (false where absent)
RECORDS = _HELPERS + r"""
local out = {}
for i = 4, #ARGV do out[#out + 1] = record_of(ARGV[i]) end
return out
"""

# ARGV: ns, bands, rows, 4-byte sentence hash, ... -> counts
SENT_COUNTS = _HELPERS + r"""
local out = {}
for i = 4, #ARGV do out[#out + 1] = tonumber(redis.call('HGET', shard('e', ARGV[i]), ARGV[i]) or 0) end
return out
"""

# ARGV: ns, bands, rows, story, id, id, ...
SET_STORY = _HELPERS + r"""
local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
set_story(ARGV[4], ids)
return 1
"""

# ARGV: ns, bands, rows, minhash, day ('' = undated), window, exclude, with_sigs (0/1/2)
# with_sigs=1 answers {stored(0/1), digest, #own, own..., id, sig, story, ...}: whether
# `exclude` is already stored, the digest of its buckets (for INGEST's re-check) and the
# members of a story named `exclude`, so the caller's duplicate check and the decider's
# fresh-story-id check need no extra round trip.  with_sigs=2 sends handles, not signatures.
FIND = _HELPERS + r"""
local function answer(m, day_arg, window, id, mode_arg)
  local day = nil
  if day_arg ~= '' then day = tonumber(day_arg) end
  local mode = false
  if mode_arg == '1' then mode = 'sigs' elseif mode_arg == '2' then mode = 'handles' end
  local found, dg = find(m, day, window, id, mode)
  if not mode then return found end
  local own = redis.call('HKEYS', K_story(id))
  local out = {redis.call('HEXISTS', K_HANDLES, id), dg, #own}
  for _, v in ipairs(own) do out[#out + 1] = v end
  for _, v in ipairs(found) do out[#out + 1] = v end
  return out
end
if ARGV[4] == 'many' then
  -- ARGV: ns, bands, rows, 'many', window, mode, (minhash, day, id)...: one answer per article
  local out = {}
  for i = 7, #ARGV, 3 do out[#out + 1] = answer(ARGV[i], ARGV[i + 1], tonumber(ARGV[5]), ARGV[i + 2], ARGV[6]) end
  return out
end
return answer(ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8])
"""

# ARGV: ns, bands, rows, window, count, then per article:
#       id, record, story, is_new, nmerged, merged..., digest, ncand, (cand, story-or-'')...
# Writes the articles in order.  Before each one it re-checks what the client
# decided on and stops at the first that changed: the buckets must hold what
# FIND saw (its digest) plus only articles this call wrote, the candidates must
# still be in the stories the client assumed (after this call's own moves),
# and a new story id must still be free.  Returns {articles written, 'ok' |
# 'conflict' | 'exists', handles of the written articles...}; the client reads and
# decides the rest again.
# Comparing digests instead of re-reading candidates keeps the re-check to the
# 32 bucket reads, without fetching any record.
INGEST = _HELPERS + r"""
local window = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local i = 6
local mine, written = {}, {}
for done = 0, count - 1 do
  local id, blob, story, is_new = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1'
  i = i + 4
  local nmerged = tonumber(ARGV[i]); local merged = {}
  for j = 1, nmerged do merged[j] = ARGV[i + j] end
  i = i + nmerged + 1
  local dg = ARGV[i]
  i = i + 1
  local ncand = tonumber(ARGV[i]); local expected = {}
  for j = 0, ncand - 1 do expected[ARGV[i + 1 + 2 * j]] = ARGV[i + 2 + 2 * j] end
  i = i + 2 * ncand + 1

  if redis.call('HEXISTS', K_HANDLES, id) == 1 then lh_flush(); return {done, 'exists', unpack(written)} end
  local r = rec(blob)
  local hs, vals = bucket_handles(r.m)
  local ok = digest(hs, mine) == dg
  if ok then
    for c, want in pairs(expected) do
      if (redis.call('HGET', K_STORY_OF, c) or '') ~= want then ok = false; break end
    end
  end
  if ok and is_new and redis.call('EXISTS', K_story(story)) == 1 then ok = false end
  if not ok then lh_flush(); return {done, 'conflict', unpack(written)} end

  local hb = put(id, blob, vals)
  mine[hb] = true
  written[#written + 1] = hb
  local folded = {id}
  for _, old in ipairs(merged) do
    for _, a in ipairs(redis.call('HKEYS', K_story(old))) do folded[#folded + 1] = a end
  end
  set_story(story, folded)
end
lh_flush()
return {count, 'ok', unpack(written)}
"""

SCRIPTS = ("PUT", "DELETE", "RECORDS", "SENT_COUNTS", "SET_STORY", "FIND", "INGEST")
