-- Key names, the Lua twin of dedup/index/redis/keys.py:key (tests/test_index_redis.py checks they agree).
-- P is '{ns}:'.  ARGV[1] is the namespace, for the story-slot scripts followed by a space and the epoch
-- the client knows (see the epoch check in lib_handles.lua).
local NS, EPOCH = ARGV[1], ''
do
  local sp = string.find(NS, ' ', 1, true)
  if sp then EPOCH = string.sub(NS, sp + 1); NS = string.sub(NS, 1, sp - 1) end
end
local P = '{' .. NS .. '}:'
local function K_article(h) return P .. 'a:' .. h end
local function K_story(s) return P .. 's:' .. s end
local function K_evkeys(id) return P .. 'ek:' .. id end
local function K_evpost(hex) return P .. 'ep:' .. hex end
local function K_evlinks(id) return P .. 'el:' .. id end
local function K_shard(fam, i) return P .. fam .. ':' .. string.format('%d', i) end
local K_LH = P .. 'lh'
local K_STORIES = P .. 'stories'
local K_COUNT = P .. 'n'
local K_DAYS = P .. 'days'
local K_TODO = P .. 'todo'
local K_SPLIT = P .. 'split'
