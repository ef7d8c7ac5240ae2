-- ARGV: ns, bands, rows, nclear, (member, score)..., count, then per article:
--       id, record, fields, story, mode, nmerged, merged..., ncand, (handle, story)...
-- Commits the articles in order, each into its `story` (their buckets follow, written by the client),
-- then clears finished todo entries.  mode 'alone': the client found no candidate and no story
-- named after the article, so it starts one named after it; 'new' / 'join': the client decided on
-- candidates, which must still be in the stories it saw (and a new story id still free).  Stops at the
-- first article already stored ('exists') or decided on what changed meanwhile ('conflict').
-- -> {'ok' | 'exists' | 'conflict', articles committed, their handles..., todo...}
check_epoch(true)
local nclear = tonumber(ARGV[4])
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
-- after the commit: a server at its maxmemory refuses a script at its first write that may grow memory
-- (begin_write's HINCRBY), and only if the script has written nothing yet; clearing first would have it
-- take every commit (see errors.out_of_memory)
todo_clear(5, nclear)
finish()
local out = {status, #handles}
for _, hb in ipairs(handles) do out[#out + 1] = hb end
for _, x in ipairs(TODO) do out[#out + 1] = x end
return out
