-- ARGV: ns, bands, rows, fields, day ('' = undated), window, id, mode[, record]
-- fields: the article's bucket fields, back to back (RedisIndex._fields: u16 band + the band's raw value)
-- mode 0 answers the ids of the candidates (except `id`).
-- mode 2 answers {stored (0/1), buckets, version, #own, own..., handle, story, handle, story, ...}:
-- whether `id` is already stored, the values of its 32 buckets in its own period (pack_vals, followed by
-- the digest of what it found in other periods) and the write version
-- (INGEST writes with those values, or re-checks against them when the version moved), the members of a
-- story named `id` (the decider's fresh-story-id check), and the
-- candidates as 4-byte handles (the client keeps id and signature by handle) with their stories.
-- mode 3 is mode 2 plus the article's record: when the article is not stored, has no candidate and
-- no story is named after it, the decision can only be "new story named after it", so the script
-- stores it at once and answers {2, handle}: one round trip for the whole ingest.
-- mode 4 is mode 3 plus the client's decision on the candidates it expected (mirror.py): ARGV continues
-- story, is_new (1/0), nmerged, merged..., ncand, (handle, story)...; when the script finds exactly those
-- candidates in those stories, the id is not stored and no story is named after it (nor after a new story),
-- it writes the decision as INGEST would and answers {2, handle}: one round trip.  Else it answers as mode 2.
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
