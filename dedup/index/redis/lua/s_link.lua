-- ARGV: ns, bands, rows, id, founded (0/1), linked id, ... -> {story, other stories folded into it...}
-- or {} when `id` is gone.  Links a committed article with candidates its bucket writes turned up
-- (articles committed while it was being decided).  Every story among them folds into the smallest of
-- the candidates' stories, as one decision over all of them would have; the article's own story counts
-- too unless the article founded it (then it holds just the article, and the article joins instead).
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
