"""Lua scripts of the Redis index: every multi-key change runs server-side, atomically.

Each script is the shared helpers (key names, bucket keys, story moves,
article put/delete) followed by a short body.  ARGV[1] is always the
namespace, ARGV[2] and ARGV[3] the LSH ``bands`` and ``rows``: the scripts
compute bucket fields from the stored minhash bytes themselves, so deleting an
article needs no client-side read first.
"""

from __future__ import annotations

from .redis_keys import LUA_KEY_HELPERS

_HELPERS = LUA_KEY_HELPERS + r"""
local BANDS = tonumber(ARGV[2])
local ROWS = tonumber(ARGV[3])

-- LSH buckets: hash P..'b:'..band, field = the band's raw value bytes,
-- value = the ids in the bucket joined by NUL (ids never contain NUL)
local function band_values(m)
  local out, w = {}, ROWS * 4
  for i = 0, BANDS - 1 do
    out[#out + 1] = {K_bucket(i), string.sub(m, i * w + 1, (i + 1) * w)}
  end
  return out
end

local function bucket_add(hk, f, id)
  local v = redis.call('HGET', hk, f)
  if v then redis.call('HSET', hk, f, v .. '\0' .. id) else redis.call('HSET', hk, f, id) end
end

local function bucket_remove(hk, f, id)
  local v = redis.call('HGET', hk, f)
  if not v then return end
  local keep = {}
  for part in string.gmatch(v, '[^%z]+') do
    if part ~= id then keep[#keep + 1] = part end
  end
  if #keep == 0 then redis.call('HDEL', hk, f) else redis.call('HSET', hk, f, table.concat(keep, '\0')) end
end

-- distinct sentence hashes of a '<u4' byte string, as decimal hash fields
local function sent_fields(h)
  local out, seen = {}, {}
  for i = 1, #h - 3, 4 do
    local a, b, c, d = string.byte(h, i, i + 3)
    local s = string.format('%d', a + b * 256 + c * 65536 + d * 16777216)
    if not seen[s] then seen[s] = true; out[#out + 1] = s end
  end
  return out
end

local function touch(story)
  redis.call('ZADD', K_STORIES, redis.call('INCR', K_CLOCK), story)
end

local function leave(story, ids)
  local k = K_story(story)
  for _, id in ipairs(ids) do redis.call('SREM', k, id) end
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
    redis.call('SADD', k, id)
    redis.call('HSET', K_STORY_OF, id, story)
  end
  touch(story)
end

local function del_article(id)
  local ak = K_article(id)
  local rec = redis.call('HGETALL', ak)
  if #rec == 0 then return rec end
  local f = {}
  for i = 1, #rec, 2 do f[rec[i]] = rec[i + 1] end
  for _, b in ipairs(band_values(f['m'] or '')) do bucket_remove(b[1], b[2], id) end
  for _, s in ipairs(sent_fields(f['h'] or '')) do
    if redis.call('HINCRBY', K_SENT, s, -1) <= 0 then redis.call('HDEL', K_SENT, s) end
  end
  redis.call('DEL', ak)
  redis.call('ZREM', K_DAYS, id)
  if redis.call('DECR', K_COUNT) <= 0 then redis.call('DEL', K_COUNT) end
  local story = redis.call('HGET', K_STORY_OF, id)
  if story then
    redis.call('HDEL', K_STORY_OF, id)
    leave(story, {id})
  end
  return rec
end

-- fv: flat field/value list of the record
local function put(id, fv)
  local ak = K_article(id)
  if redis.call('EXISTS', ak) == 1 then del_article(id) end
  redis.call('HSET', ak, unpack(fv))
  local f = {}
  for i = 1, #fv, 2 do f[fv[i]] = fv[i + 1] end
  for _, b in ipairs(band_values(f['m'])) do bucket_add(b[1], b[2], id) end
  for _, s in ipairs(sent_fields(f['h'])) do redis.call('HINCRBY', K_SENT, s, 1) end
  redis.call('INCR', K_COUNT)
  if f['d'] ~= '' then redis.call('ZADD', K_DAYS, f['d'], id) end
end

-- ids sharing a band with minhash m, within the window, except `exclude`;
-- with_sigs adds each one's signature fields and story: id, d, m, ti, tw, sh, story
local function find(m, day, window, exclude, with_sigs)
  local ids, seen = {}, {}
  for _, b in ipairs(band_values(m)) do
    local v = redis.call('HGET', b[1], b[2])
    if v then
      for id in string.gmatch(v, '[^%z]+') do
        if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
      end
    end
  end
  local out = {}
  for _, id in ipairs(ids) do
    if id ~= exclude then
      local r = redis.call('HMGET', K_article(id), 'd', 'm', 'ti', 'tw', 'sh')
      local ok = r[1] ~= false
      if ok and day ~= '' and r[1] ~= '' then
        ok = math.abs(tonumber(r[1]) - tonumber(day)) <= window
      end
      if ok then
        out[#out + 1] = id
        if with_sigs then
          for j = 1, 5 do out[#out + 1] = r[j] or '' end
          out[#out + 1] = redis.call('HGET', K_STORY_OF, id) or ''
        end
      end
    end
  end
  return out
end
"""

# ARGV: ns, bands, rows, id, nfields*2, field, value, ...
PUT = _HELPERS + r"""
local n = tonumber(ARGV[5])
local fv = {}
for i = 1, n do fv[i] = ARGV[5 + i] end
put(ARGV[4], fv)
return 1
"""

# ARGV: ns, bands, rows, id -> the old record as a flat field/value list (empty if absent)
DELETE = _HELPERS + r"""
return del_article(ARGV[4])
"""

# ARGV: ns, bands, rows, story, id, id, ...
SET_STORY = _HELPERS + r"""
local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
set_story(ARGV[4], ids)
return 1
"""

# ARGV: ns, bands, rows, minhash, day, window, exclude, with_sigs(0/1)
# with_sigs=1 also returns the members of story `exclude` first (count, ids...),
# so the decider's fresh-story-id check needs no extra round trip.
FIND = _HELPERS + r"""
local found = find(ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8] == '1')
if ARGV[8] ~= '1' then return found end
local own = redis.call('SMEMBERS', K_story(ARGV[7]))
local out = {#own}
for _, v in ipairs(own) do out[#out + 1] = v end
for _, v in ipairs(found) do out[#out + 1] = v end
return out
"""

# ARGV: ns, bands, rows, id, minhash, day, window, story, is_new,
#       nfv, fv..., nmerged, merged..., ncand, (cand, story-or-'')...
# Re-checks what the client decided on (candidates, their stories, the new
# story id being free) and writes only if nothing changed since it read;
# otherwise returns a conflict and the client reads and decides again.
INGEST = _HELPERS + r"""
local id, m, day, window = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local story, is_new = ARGV[8], ARGV[9] == '1'
local i = 10
local nfv = tonumber(ARGV[i]); local fv = {}
for j = 1, nfv do fv[j] = ARGV[i + j] end
i = i + nfv + 1
local nmerged = tonumber(ARGV[i]); local merged = {}
for j = 1, nmerged do merged[j] = ARGV[i + j] end
i = i + nmerged + 1
local ncand = tonumber(ARGV[i]); local expected = {}
for j = 0, ncand - 1 do expected[ARGV[i + 1 + 2 * j]] = ARGV[i + 2 + 2 * j] end

if redis.call('EXISTS', K_article(id)) == 1 then return 'exists' end
local now = find(m, day, window, id, false)
if #now ~= ncand then return 'conflict' end
for _, c in ipairs(now) do
  local want = expected[c]
  if want == nil then return 'conflict' end
  if (redis.call('HGET', K_STORY_OF, c) or '') ~= want then return 'conflict' end
end
if is_new and redis.call('EXISTS', K_story(story)) == 1 then return 'conflict' end

put(id, fv)
local folded = {id}
for _, old in ipairs(merged) do
  for _, a in ipairs(redis.call('SMEMBERS', K_story(old))) do folded[#folded + 1] = a end
end
set_story(story, folded)
return 'ok'
"""
