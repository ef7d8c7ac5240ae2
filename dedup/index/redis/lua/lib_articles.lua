-- Articles and stories: storing and deleting an article, moving articles between stories, and finding
-- an article's candidates.  Story-slot scripts only: the band script of the spread layout does without it.

-- distinct 4-byte sentence hashes of a '<u4' byte string
local function sent_fields(h)
  local out, seen = {}, {}
  for i = 1, #h - 3, 4 do
    local s = string.sub(h, i, i + 3)
    if not seen[s] then seen[s] = true; out[#out + 1] = s end
  end
  return out
end

-- Sentence counts are partitioned by publication period as buckets are: an article counts its sentences
-- in the family of its period, 'e:<period>' ('e:u' when undated).  Ingest then increments shards of the
-- current period only, a working set that stays the same size as the index grows, instead of ~18 random
-- shards of one family spanning the whole index.  A sentence's count is the sum over the periods
-- (SENT_COUNTS), read only when a story is ranked.
local function efam(tag)
  if tag == UNDATED_TAG then return 'e:u' end
  return with_num('e:', (tag - tag % PERIOD_DAYS) / PERIOD_DAYS)
end

local function sent_add(fam, f)
  if redis.call('HINCRBY', shard(fam, f), f, '1') == 1 then lh_count(fam, 1) end
end

local function sent_remove(fam, f)
  local k = shard(fam, f)
  if redis.call('HINCRBY', k, f, '-1') <= 0 then
    redis.call('HDEL', k, f)
    lh_count(fam, -1)
  end
end

local function touch(story)
  -- the clock (a field of {ns}:meta) never restarts within an epoch: story versions stay unique
  redis.call('ZADD', K_STORIES, with_num('', redis.call('HINCRBY', KEYS[1], 'clock', 1)), story)
end

-- ids leave story; into: the story they join (nil when deleted)
local function leave(story, ids, into)
  local k = K_story(story)
  for _, id in ipairs(ids) do redis.call('HDEL', k, id) end
  if redis.call('EXISTS', k) == 1 then
    touch(story)
  else
    redis.call('ZREM', K_STORIES, story)
    -- a story that owed a re-split (K_SPLIT) hands the debt on to the story its articles joined
    if redis.call('HDEL', K_SPLIT, story) == 1 and into then redis.call('HSET', K_SPLIT, into, '') end
  end
end

-- What moving `ids` into `story` will write, read before anything is written.  known: optional id ->
-- {4-byte handle, its info value} the caller already has.  Only stored articles have a story.
local function plan_story(story, ids, known)
  local p = {story = story, by_old = {}, order = {}, moves = {}, members = {}}
  for _, id in ipairs(ids) do
    local hb, v
    local k = known and known[id]
    if k then
      hb, v = k[1], k[2]
    else
      hb = handle_of(id)
      v = hb and info_get(hb)
    end
    if v then
      local old = info_story(v)
      if old ~= '' and old ~= story then
        if not p.by_old[old] then p.by_old[old] = {}; p.order[#p.order + 1] = old end
        table.insert(p.by_old[old], id)
      end
      if old ~= story then p.moves[#p.moves + 1] = {hb, string.sub(v, 1, 4) .. story} end
      p.members[#p.members + 1] = id
      p.members[#p.members + 1] = ''
    end
  end
  return p
end

-- Moves articles between stories, one plan_story per target story, all read before any is written.
-- Resharding: on a master whose slot is moving, Redis stops a script at the first key that has left (or
-- that it would create) and keeps what the script wrote before it.  A re-split stopped after one
-- article had left its story hash, and before its handle-table value named the new story, left the two
-- disagreeing for good (the story re-split later no longer listed it).  So every key the moves will
-- write is touched first (EXISTS stops the script the same way): stopped there, it has written nothing
-- of them.  The handle-table shards were read by plan_story already.
local function set_stories(plans)
  local keys, leaving = {K_STORIES}, {}
  for _, p in ipairs(plans) do
    if #p.members > 0 then
      keys[#keys + 1] = K_story(p.story)
      for _, old in ipairs(p.order) do leaving[old] = (leaving[old] or 0) + #p.by_old[old] end
    end
  end
  for old, n in pairs(leaving) do
    local k = K_story(old)
    keys[#keys + 1] = k
    -- a story the moves empty hands its re-split debt on (leave)
    if redis.call('HLEN', k) <= n then keys[#keys + 1] = K_SPLIT end
  end
  for _, k in ipairs(keys) do redis.call('EXISTS', k) end
  for _, p in ipairs(plans) do
    if #p.members > 0 then
      for _, old in ipairs(p.order) do leave(old, p.by_old[old], p.story) end
      redis.call('HSET', K_story(p.story), unpack(p.members))
      for _, mv in ipairs(p.moves) do redis.call('HSET', shard_i(mv[1]), mv[1], mv[2]) end
      touch(p.story)
    end
  end
end

local function set_story(story, ids, known)
  set_stories({plan_story(story, ids, known)})
end

-- {handle (decimal), record} of a stored id, false when absent (the handle names the record's key)
local function record_of(id)
  local h = handle_get(id)
  local blob = h and redis.call('GET', K_article(h))
  if not blob then return false end
  return {h, blob}
end

-- The spread layout (dedup/index/redis/spread.py) keeps buckets in slots of their own: its scripts set
-- SPREAD, and instead of writing buckets, put and del_article note the handle and its bucket fields in
-- the todo zset (scored by the server's clock in us), which the client clears once it wrote the buckets.
-- TODO collects what this script noted: {'+' or '-', member, score} for the client.
local SPREAD = false
local TODO = {}
-- the spread layout keeps records in the band groups' slots: a script deleting an article whose record
-- is no longer in this slot is handed it by the client (S_DELETE checks that it is the stored version's)
local HINT = false
local function todo_add(op, hb, fields)
  local member = hb .. table.concat(fields)
  local t = redis.call('TIME')
  local score = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local old = tonumber(redis.call('ZSCORE', K_TODO, member))
  if old and old >= score then score = old + 1 end
  redis.call('ZADD', K_TODO, with_num('', score), member)
  TODO[#TODO + 1] = op; TODO[#TODO + 1] = member; TODO[#TODO + 1] = with_num('', score)
end

-- the families an article of day tag `tag` is written to (or deleted from): named before the script's
-- next family state read, their state comes with it (one HMGET)
local function want_write_fams(tag)
  if not SPREAD then lh_want(bfam(tag)) end
  lh_want(efam(tag))
end

-- an article's event keys (events.lua) leave their postings and its list
local function drop_event_keys(id)
  local ek = K_evkeys(id)
  for _, x in ipairs(redis.call('HKEYS', ek)) do redis.call('HDEL', K_evpost(x), id) end
  redis.call('DEL', ek)
end

-- removes an article everywhere; returns its record (false if absent)
local function del_article(id)
  local h = handle_get(id)
  if not h then return false end
  local ak = K_article(h)
  local blob = redis.call('GET', ak) or HINT
  redis.call('DEL', ak)
  handle_del(id)
  -- its event evidence (events.lua) goes with it, on every path that removes an article: its keys, and
  -- its links both ways
  drop_event_keys(id)
  local el = K_evlinks(id)
  for _, o in ipairs(redis.call('HKEYS', el)) do redis.call('HDEL', K_evlinks(o), id) end
  redis.call('DEL', el)
  local hb = struct.pack('<I4', tonumber(h))
  local v = info_get(hb)
  if v then redis.call('HDEL', shard_i(hb), hb) end
  if blob then
    local r = rec(blob)
    local tag = day_tag(r.day)
    want_write_fams(tag)
    if SPREAD then
      todo_add('-', hb, band_fields(r.m))
    else
      local fam, lost = bfam(tag), 0
      for _, f in ipairs(band_fields(r.m)) do lost = lost + bucket_remove(fam, f, hb) end
      lh_count(fam, lost)
    end
    local ef = efam(tag)
    for _, f in ipairs(sent_fields(r.h)) do sent_remove(ef, f) end
    if r.day and redis.call('HINCRBY', K_DAYS, r.day, '-1') <= 0 then redis.call('HDEL', K_DAYS, r.day) end
  end
  if redis.call('DECR', K_COUNT) <= 0 then redis.call('DEL', K_COUNT); EMPTIED = true end
  if v and info_story(v) ~= '' then
    local s = info_story(v)
    leave(s, {id})
    -- the article may have held the story together: it owes a re-split, which the client writes next
    -- (dedup.stories.remove, then RESPLIT clears this); a crash before leaves it for finish_splits
    if redis.call('HLEN', K_story(s)) >= 2 then redis.call('HSET', K_SPLIT, s, '') end
  end
  return blob or false
end

-- put counts its new bucket fields in steps of GROW (see there)
local GROW = LOAD / 2

-- vals: optional field -> current value (false if absent) of this record's buckets, read just before;
-- absent: true when the caller knows the id is not stored; story: the story it goes into (its info
-- is written with it, so set_story then has nothing to move); fields: its bucket fields when the
-- caller has them.  Returns the handle and the info value.
local function put(id, blob, vals, absent, story, fields)
  vals = vals or {}
  if not absent and handle_exists(id) then del_article(id) end
  -- handles are never given out twice within an epoch (see check_epoch): other processes keep handles they
  -- saw (RedisIndex._sig_cache), and a handle given out again would make them verify against another article
  local h = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  local hs = string.format('%d', h)
  redis.call('SET', K_article(hs), blob)
  handle_set(id, hs)
  local r = rec(blob)
  local hb = struct.pack('<I4', h)
  local tag = day_tag(r.day)
  if SPREAD then
    todo_add('+', hb, fields or band_fields(r.m))
  else
    -- the family's field count is updated (and its shards split) once per GROW new fields, not per field
    -- (together with shard()'s key cache: 181 -> 174 us of server time per streamed article); a shard
    -- takes at most GROW fields more before a split than when counted one at a time
    local fam, entry, grown = bfam(tag), period_entry(hb, tag), 0
    for _, f in ipairs(fields or band_fields(r.m)) do
      grown = grown + bucket_add(fam, f, entry, vals[f])
      if grown >= GROW then lh_count(fam, grown); grown = 0 end
    end
    lh_count(fam, grown)
  end
  local ef = efam(tag)
  for _, f in ipairs(sent_fields(r.h)) do sent_add(ef, f) end
  redis.call('INCR', K_COUNT)
  if r.day then redis.call('HINCRBY', K_DAYS, r.day, '1') end
  local info = struct.pack('<i4', r.day or NODAY) .. (story or '')
  redis.call('HSET', shard_i(hb), hb, info)
  return hb, info
end

-- the story part of writing an article just put (handle hb, handle-table value info): it and every member
-- of the stories it merges go into `story`
local function join_story(id, hb, info, story, merged)
  local folded = {id}
  for _, old in ipairs(merged) do
    for _, a in ipairs(redis.call('HKEYS', K_story(old))) do folded[#folded + 1] = a end
  end
  set_story(story, folded, {[id] = {hb, info}})
end

-- field -> value (false: empty) of these buckets of family fam
local function bucket_values(fam, fields)
  local vals = {}
  for _, f in ipairs(fields) do vals[f] = bucket_get(fam, f) end
  return vals
end

-- distinct handles in these bucket values (of a period's family: 5-byte entries)
local function handles_in(fields, vals)
  local hs, seen = {}, {}
  for _, f in ipairs(fields) do
    local v = vals[f]
    if v then
      for j = 1, #v, 5 do
        local hb = string.sub(v, j, j + 3)
        if not seen[hb] then
          seen[hb] = true
          hs[#hs + 1] = hb
        end
      end
    end
  end
  return hs
end

-- bucket values as one string (u32 length per band, 0xFFFFFFFF when absent, then the values back to
-- back), for FIND to hand to the client and the client back to INGEST; unpack_vals reverses it.
-- One struct call for all the lengths instead of one per band.  `rest` follows them: the digest of what
-- the other periods' buckets held (see find), which the client hands back unchanged.
local function pack_vals(fields, vals, rest)
  local lens, parts = {}, {}
  for i, f in ipairs(fields) do
    local v = vals[f]
    if v then lens[i] = #v; parts[#parts + 1] = v else lens[i] = 4294967295 end
  end
  return struct.pack('<' .. string.rep('I4', #fields), unpack(lens)) .. table.concat(parts) .. rest
end

-- field -> value, and the rest
local function unpack_vals(fields, packed)
  local lens = {struct.unpack('<' .. string.rep('I4', #fields), packed)}
  local vals, pos = {}, 4 * #fields + 1
  for i, f in ipairs(fields) do
    local n = lens[i]
    if n == 4294967295 then
      vals[f] = false
    else
      vals[f] = string.sub(packed, pos, pos + n - 1)
      pos = pos + n
    end
  end
  return vals, string.sub(packed, pos)
end

-- what the buckets of m hold, as one comparable string (sorted handles), leaving out `mine`:
-- handles never get reused for another record, so an equal digest means equal candidates
local function digest(hs, mine)
  local keep = {}
  for _, hb in ipairs(hs) do if not mine[hb] then keep[#keep + 1] = hb end end
  table.sort(keep)
  return table.concat(keep)
end

-- the digest of the buckets `fields` in the families fams[2], fams[3], ... ('' when there are none):
-- the candidates an article finds outside its own period, for INGEST to see whether they changed
local function others_digest(fams, fields, mine, read)
  if #fams < 2 then return '' end
  local hs = {}
  for j = 2, #fams do
    local vals = (read and read[j]) or bucket_values(fams[j], fields)
    for _, hb in ipairs((handles_in(fields, vals))) do hs[#hs + 1] = hb end
  end
  return digest(hs, mine)
end

-- the candidates of minhash m: handles sharing a band, within the window of day (nil: undated),
-- (by day tag: may include a few more, see tag_within), except own (a 4-byte handle or false),
-- each with its info value: {{hb, info}, ...}.
-- Also returns the bucket values read in the article's own period (field -> value or false) and the
-- digest of the other periods' buckets.
local function find(fields, day, window, own)
  local fams = read_fams(day_tag(day), window)
  local all = {}
  for j, fam in ipairs(fams) do all[j] = bucket_values(fam, fields) end
  local own_n = own and struct.unpack('<I4', own) or -1
  local out, seen = {}, {}
  -- entries are decoded with one string.byte each rather than cut into strings: a popular bucket
  -- holds hundreds of them, and only the few new handles within the window become strings
  local byte = string.byte
  for k, vals in ipairs(all) do
    local base = period_base(fams[k])
    for _, f in ipairs(fields) do
      local v = vals[f]
      if v then
        for j = 1, #v, 5 do
          local b1, b2, b3, b4, t = byte(v, j, j + 4)
          local h = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
          if not seen[h] then
            seen[h] = true
            if h ~= own_n and (not base or tag_within(base + t, day, window)) then
              local hb = string.sub(v, j, j + 3)
              local info = info_get(hb)
              if info then out[#out + 1] = {hb, info} end
            end
          end
        end
      end
    end
  end
  return out, all[1], others_digest(fams, fields, {}, all)
end
