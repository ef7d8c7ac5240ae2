-- Buckets: day tags, families by publication period, bucket values in pieces.

-- a bucket entry is the 4-byte handle + a 2-byte day tag, so FIND filters by the window
-- without reading anything per candidate: the day modulo 65535, 65535 when undated
local function day_tag(day)
  if not day then return UNDATED_TAG end
  return day % 65535
end

-- might a tag be within `window` days of `day` (nil: undated)?  Modular, so a day 179 years
-- away can pass: the client's verification checks the exact days again
local function tag_within(tag, day, window)
  if not day or tag == UNDATED_TAG or window >= 32767 then return true end
  local d = math.abs(tag - day_tag(day))
  return d <= window or 65535 - d <= window
end

-- Buckets are partitioned by publication period (PERIOD_DAYS days of day tags): an article's entries go in the
-- family of its period, 'b:<period>' ('b:u' when undated), and it reads the periods within its window
-- (its own only, for most articles) and the undated family when there is one.  So a lookup reads the
-- shards of recent periods, a working set that stays the same size however many periods the index holds,
-- and does not decode the entries of older articles that share a bucket.  (The spread layout's band
-- groups keep one family, 'b', per group.)
local function bfam(tag)
  if tag == UNDATED_TAG then return 'b:u' end
  return with_num('b:', (tag - tag % PERIOD_DAYS) / PERIOD_DAYS)
end

-- An entry of a period's family is the 4-byte handle + one byte, the day's place in the period (255:
-- undated): the period gives the rest of the day tag.  The band groups of the spread layout keep one family,
-- 'b', whose entries need the whole tag: handle + 2 bytes.
local function entry_width(fam)
  if fam == 'b' then return 6 end
  return 5
end
local function period_entry(hb, tag)
  if tag == UNDATED_TAG then return hb .. '\255' end
  return hb .. string.char(tag % PERIOD_DAYS)
end
-- the day tag of a period family's entries is base + their byte (nil: the undated family)
local function period_base(fam)
  local p = tonumber(string.sub(fam, 3))
  return p and p * PERIOD_DAYS
end

-- the families an article tagged `tag` reads within `window` days, its own first: nil for every one (an
-- undated article, or an unbounded window: undated articles are candidates of every article, and every
-- article is theirs).  The Python twin is keys.read_families.
local function window_fams(tag, window)
  if tag == UNDATED_TAG or window >= 32767 then return nil end
  local own = bfam(tag)
  local out, seen = {own}, {[own] = true}
  local d = -window
  while d <= window do
    local t = (tag + d) % 65535  -- day tags wrap after 65534
    local f = bfam(t)
    if not seen[f] then seen[f] = true; out[#out + 1] = f end
    d = d + math.min(PERIOD_DAYS - t % PERIOD_DAYS, 65535 - t)  -- the next period's first day
  end
  if not seen['b:u'] then out[#out + 1] = 'b:u' end
  return out
end

-- every family of one kind ('b:' or 'e:') that holds anything (a family's state goes with its last field)
local function stored_fams(prefix)
  local out = {}
  local all = redis.call('HGETALL', K_LH)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == prefix and string.byte(f, #f) == 110 then  -- '<prefix><period>n'
      out[#out + 1] = string.sub(f, 1, -2)
    end
  end
  return out
end

-- the families to read: the article's own first (the one it is written to, even while empty), then those
-- of window_fams that hold anything
local function read_fams(tag, window)
  local own = bfam(tag)
  local want = window_fams(tag, window)
  if not want then
    want = {own}
    for _, f in ipairs(stored_fams('b:')) do
      if f ~= own then want[#want + 1] = f end
    end
  end
  for _, f in ipairs(want) do lh_want(f) end
  local out = {own}
  for j = 2, #want do
    if lh(want[j]).n > 0 then out[#out + 1] = want[j] end
  end
  return out
end

-- bucket values this script wrote (family -> field -> value, false once emptied): INGEST's fast path
-- takes the values FIND read, except where this script changed them since
local BV = {}
local function bv_of(fam)
  local t = BV[fam]
  if not t then t = {}; BV[fam] = t end
  return t
end

-- A bucket's value is stored in pieces of at most PIECE bytes (10 entries): field f, then
-- u16 j .. f for j = 1, 2, ... (a different length than any bucket field, and the same last 4
-- bytes, hence the same shard).  Every piece stays under hash-max-listpack-value (64 bytes), so
-- a popular bucket does not turn its whole shard into a hash table.
local PIECE = 60
local function piece_field(f, j)
  if j == 0 then return f end
  return struct.pack('<I2', j) .. f
end

-- the whole value of bucket f of family fam (false: empty)
local function bucket_get(fam, f)
  local k = shard(fam, f)
  local v = redis.call('HGET', k, f)
  if not v or #v < PIECE then return v end
  local parts, j = {v}, 1
  while true do
    local p = redis.call('HGET', k, piece_field(f, j))
    if not p then break end
    parts[#parts + 1] = p
    if #p < PIECE then break end
    j = j + 1
  end
  return table.concat(parts)
end

local function npieces(v)
  if not v then return 0 end
  return math.ceil(#v / PIECE)
end

-- bucket f goes from value old to new (false: empty); they agree before byte `from`.  Returns how many
-- fields the family gained (or lost, < 0), for the caller to hand to lh_count: one call for several
-- buckets (see put)
local function bucket_put(fam, f, old, new, from)
  local k = shard(fam, f)
  if new and #new <= PIECE and (not old or #old <= PIECE) then
    -- one piece before (or none) and after: most of an article's 32 bucket writes, without the piece
    -- arithmetic below (~2% of the server's time)
    redis.call('HSET', k, f, new)
    bv_of(fam)[f] = new
    if not old then return 1 end
    return 0
  end
  local n_old, n_new = npieces(old), npieces(new)
  -- the piece holding byte `from` changed (an entry was appended or removed there), and so did every
  -- later one (shifted by an entry) but in rare coincidences, where writing it again is harmless
  if n_new == 1 then
    redis.call('HSET', k, f, new)
  else
    for j = math.floor((from - 1) / PIECE), n_new - 1 do
      redis.call('HSET', k, piece_field(f, j), string.sub(new, j * PIECE + 1, (j + 1) * PIECE))
    end
  end
  for j = n_new, n_old - 1 do redis.call('HDEL', k, piece_field(f, j)) end
  bv_of(fam)[f] = new
  return n_new - n_old
end

-- known: the field's current value when the caller just read it (false: absent), nil: read it;
-- hb: the bucket entry (handle + day, see period_entry).  Returns the change in the family's fields.
local function bucket_add(fam, f, hb, known)
  local v = known
  if v == nil then v = bucket_get(fam, f) end
  if v then return bucket_put(fam, f, v, v .. hb, #v + 1) end
  return bucket_put(fam, f, false, hb, 1)
end

-- returns the change in the family's fields
local function bucket_remove(fam, f, hb)
  local v = bucket_get(fam, f)
  if not v then return 0 end
  local keep, from = {}, nil
  local w = entry_width(fam)
  for j = 1, #v, w do
    if string.sub(v, j, j + 3) ~= hb then
      keep[#keep + 1] = string.sub(v, j, j + w - 1)
    elseif not from then
      from = j
    end
  end
  if not from then return 0 end
  if #keep == 0 then return bucket_put(fam, f, v, false, 1) end
  return bucket_put(fam, f, v, table.concat(keep), from)
end

