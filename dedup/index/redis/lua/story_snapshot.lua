-- ARGV: ns, bands, rows, story -> {version ('' when the story does not exist), member, ...}
-- (the version is the story's score in the stories zset: the clock tick of its last change)
check_epoch(false)
local out = {redis.call('ZSCORE', K_STORIES, ARGV[4]) or ''}
for _, m in ipairs(redis.call('HKEYS', K_story(ARGV[4]))) do out[#out + 1] = m end
return out
