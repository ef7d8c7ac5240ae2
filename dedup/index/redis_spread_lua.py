"""Lua scripts of the spread layout (:mod:`dedup.index.redis_spread`).

Two kinds of script, each touching one slot only, as a Redis Cluster requires:

* the **story slot** scripts (``{ns}``, KEYS[1] = ``{ns}:meta``) keep what must change atomically
  together: records, handles, the handle table, stories, counters, sentence counts, and the ``todo``
  zset of articles whose buckets may lag their commit;
* the **band** script (a band group's tag, KEYS[1] = ``{tag}:lh``) reads and writes the buckets of one
  group of bands.  It is the bucket sections of the shared helpers run with the group's tag as
  namespace, so buckets, pieces and linear hashing are the very code of the one-slot layout; but a
  group keeps one bucket family, ``b``, where the one-slot layout keeps one per publication period.

The slot layout's read-only and story scripts (RECORDS, STORY_OF, SENT_COUNTS, SET_STORY,
STORY_SNAPSHOT, RESPLIT) touch no bucket and serve the spread layout unchanged.
"""

from __future__ import annotations

from .redis_lua_lib import BUCKET_HELPERS as _BUCKET_HELPERS
from .redis_lua_lib import HELPERS as _HELPERS

# the todo entries a script noted, for the client: {'+' / '-', member, score, ...}
_CLEAR = r"""
-- clear todo entries the client finished: (member, score) pairs from ARGV[i], count n; an entry noted
-- again since (a later score) stays for whoever noted it.
-- Clearing an entry also drops the record's copy in this slot: the commit keeps one here until the
-- client has written the record to its band group's slot with the buckets (readers fall back on it).
local function todo_clear(i, n)
  for j = 0, n - 1 do
    local m, s = ARGV[i + 2 * j], ARGV[i + 2 * j + 1]
    if tonumber(redis.call('ZSCORE', K_TODO, m)) == tonumber(s) then
      redis.call('ZREM', K_TODO, m)
      redis.call('DEL', K_article(with_num('', struct.unpack('<I4', m))))
      EMPTIED = true  -- perhaps the last entry of an emptied namespace: finish() then drops meta
    end
  end
end
"""

SPREAD_HELPERS = _HELPERS + _CLEAR + "\nSPREAD = true\n"

# ARGV: ns, bands, rows, id, record, fields -> {handle, todo...}, or {false} when the id is stored
# (the client deletes the stored version first: only it can hand over the record, see S_DELETE)
S_PUT = SPREAD_HELPERS + r"""
check_epoch(true)
want_write_fams(day_tag(rec_day(ARGV[5])))
if handle_exists(ARGV[4]) then return {false} end
begin_write()
local hb = put(ARGV[4], ARGV[5], nil, true, nil, split_fields(ARGV[6]))
finish()
return {hb, unpack(TODO)}
"""

# ARGV: ns, bands, rows, id, handle (decimal), its record -> {old record or false, todo...}, or
# {false, 'moved'} when the id is stored under another handle now (read again and retry)
S_DELETE = SPREAD_HELPERS + r"""
check_epoch(false)
local h = handle_get(ARGV[4])
if not h then return {false} end
if h ~= ARGV[5] then return {false, 'moved'} end
if ARGV[6] ~= '' then HINT = ARGV[6] end
begin_write()
local blob = del_article(ARGV[4])
finish()
return {blob, unpack(TODO)}
"""

# ARGV: ns, bands, rows, id ('' for none), handle, handle, ...
# -> {own handle or false, #own, own members..., info or false per handle}
# own: the handle of `id` if stored, and the members of a story named after it (the fresh-story check)
S_LOOKUP = SPREAD_HELPERS + r"""
check_epoch(false)
local id = ARGV[4]
local out = {false, 0}
if id ~= '' then
  out[1] = handle_of(id)
  local own = redis.call('HKEYS', K_story(id))
  out[2] = #own
  for _, m in ipairs(own) do out[#out + 1] = m end
end
for i = 5, #ARGV do out[#out + 1] = info_get(ARGV[i]) end
return out
"""

# ARGV: ns, bands, rows, nclear, (member, score)..., count, then per article:
#       id, record, fields, story, mode, nmerged, merged..., ncand, (handle, story)...
# Clears finished todo entries, then commits the articles in order, each into its `story` (their
# buckets follow, written by the client).  mode 'alone': the client found no candidate and no story
# named after the article, so it starts one named after it; 'new' / 'join': the client decided on
# candidates, which must still be in the stories it saw (and a new story id still free).  Stops at the
# first article already stored ('exists') or decided on what changed meanwhile ('conflict').
# -> {'ok' | 'exists' | 'conflict', articles committed, their handles..., todo...}
S_COMMIT = SPREAD_HELPERS + r"""
check_epoch(true)
local nclear = tonumber(ARGV[4])
todo_clear(5, nclear)
local i = 5 + 2 * nclear
local count = tonumber(ARGV[i])
i = i + 1
local handles = {}
local status = 'ok'
for done = 0, count - 1 do
  local id, blob, packed, story, mode = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  local nmerged = tonumber(ARGV[i]); local merged = {}
  for j = 1, nmerged do merged[j] = ARGV[i + j] end
  i = i + nmerged + 1
  local ncand = tonumber(ARGV[i])
  local c0 = i
  i = i + 2 * ncand + 1
  want_write_fams(day_tag(rec_day(blob)))
  if handle_exists(id) then status = 'exists'; break end
  if mode ~= 'join' and redis.call('EXISTS', K_story(story)) == 1 then status = 'conflict'; break end
  for j = 0, ncand - 1 do
    local v = info_get(ARGV[c0 + 1 + 2 * j])
    if not v or info_story(v) ~= ARGV[c0 + 2 + 2 * j] then status = 'conflict'; break end
  end
  if status ~= 'ok' then break end
  if done == 0 then begin_write() end
  local hb, info = put(id, blob, nil, true, story, split_fields(packed))
  handles[#handles + 1] = hb
  join_story(id, hb, info, story, merged)
end
finish()
local out = {status, #handles}
for _, hb in ipairs(handles) do out[#out + 1] = hb end
for _, x in ipairs(TODO) do out[#out + 1] = x end
return out
"""

# ARGV: ns, bands, rows, id, founded (0/1), linked id, ... -> {story, other stories folded into it...}
# or {} when `id` is gone.  Links a committed article with candidates its bucket writes turned up
# (articles committed while it was being decided).  Every story among them folds into the smallest of
# the candidates' stories, as one decision over all of them would have; the article's own story counts
# too unless the article founded it (then it holds just the article, and the article joins instead).
S_LINK = SPREAD_HELPERS + r"""
check_epoch(false)
local hb = handle_of(ARGV[4])
local v = hb and info_get(hb)
if not v then return {} end
local own = info_story(v)
local stories, seen = {}, {}
if ARGV[5] == '0' and own ~= '' then seen[own] = true; stories[1] = own end
for i = 6, #ARGV do
  local h = handle_of(ARGV[i])
  local w = h and info_get(h)
  local s = w and info_story(w)
  if s and s ~= '' and not seen[s] then seen[s] = true; stories[#stories + 1] = s end
end
if #stories == 0 then return {own} end
table.sort(stories)
if own ~= '' and not seen[own] then stories[#stories + 1] = own end
if #stories < 2 then return stories end
begin_write()
local plans = {}
for j = 2, #stories do plans[#plans + 1] = plan_story(stories[1], redis.call('HKEYS', K_story(stories[j]))) end
set_stories(plans)
finish()
return stories
"""

# ARGV: ns, bands, rows, (member, score)... -> 1
S_CLEAR = SPREAD_HELPERS + r"""
check_epoch(false)
todo_clear(4, (#ARGV - 3) / 2)
finish()
return 1
"""

# ARGV: ns, bands, rows, age_us, limit -> {member, score, ...} of todo entries at least age_us old
S_TODO = SPREAD_HELPERS + r"""
check_epoch(false)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZRANGEBYSCORE', K_TODO, '-inf', with_num('', math.max(0, now - tonumber(ARGV[4]))),
                  'WITHSCORES', 'LIMIT', '0', ARGV[5])
"""

# Runs in a band group's slot: ARGV: group tag, 1, rows, op, (field, entry)...
# 'get' -> each bucket's value (false: empty); 'add' -> each value before adding the entry (the entry's
# handle is added once: adding again answers the value and changes nothing); 'del' -> 1 per field.
# Records of the handles whose group this is ((handle, record) pairs, the handle in decimal; '' for
# the record where none is given): 'rput' stores them, 'rget' answers them (false: absent), 'rdel' drops them.
BAND = _BUCKET_HELPERS + r"""
local op = ARGV[4]
local out = {}
for i = 5, #ARGV, 2 do
  local f, e = ARGV[i], ARGV[i + 1]
  if op == 'rget' then
    out[#out + 1] = redis.call('GET', K_article(f))
  elseif op == 'rput' then
    redis.call('SET', K_article(f), e)
    out[#out + 1] = 1
  elseif op == 'rdel' then
    out[#out + 1] = redis.call('DEL', K_article(f))
  elseif op == 'get' then
    out[#out + 1] = bucket_get('b', f)
  elseif op == 'add' then
    local v = bucket_get('b', f)
    local there = false
    if v then
      local hb = string.sub(e, 1, 4)
      for j = 1, #v, 6 do if string.sub(v, j, j + 3) == hb then there = true; break end end
    end
    if not there then lh_count('b', bucket_add('b', f, e, v)) end
    out[#out + 1] = v
  else
    lh_count('b', bucket_remove('b', f, string.sub(e, 1, 4)))
    out[#out + 1] = 1
  end
end
lh_flush()
return out
"""

SCRIPTS = ("S_PUT", "S_DELETE", "S_LOOKUP", "S_COMMIT", "S_LINK", "S_CLEAR", "S_TODO", "BAND")
