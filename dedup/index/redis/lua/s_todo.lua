-- ARGV: ns, bands, rows, age_us, limit -> {member, score, ...} of todo entries at least age_us old
check_epoch(false)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZRANGEBYSCORE', K_TODO, '-inf', with_num('', math.max(0, now - tonumber(ARGV[4]))),
                  'WITHSCORES', 'LIMIT', '0', ARGV[5])
