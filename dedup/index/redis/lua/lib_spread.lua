-- The spread layout's story-slot scripts (dedup/index/redis/spread.py) add this last: they note bucket
-- writes in the todo zset instead of making them (see SPREAD in lib_articles.lua).

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

SPREAD = true
