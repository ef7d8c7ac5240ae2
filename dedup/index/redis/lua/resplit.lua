-- ARGV: ns, bands, rows, story, version ('*': any), then per part: new story, count, id, ... -> 1, or 0
-- when the story's version moved since STORY_SNAPSHOT (nothing written; the caller reads and splits again)
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
