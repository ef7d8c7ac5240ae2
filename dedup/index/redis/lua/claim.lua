-- Not one of SCRIPTS (it takes none of their arguments): KEYS[1] = {ns}:meta, ARGV: fingerprint, a new
-- epoch, a random handle to start from -> {fingerprint, epoch} as stored.  Claims an empty namespace (one
-- without meta) for these settings and this epoch, atomically, or answers who claimed it (RedisIndex._claim).
-- Handles of a new epoch start at a random point: a band write of the spread layout held up for longer than
-- the sweep (it runs in another slot, so no epoch check can stop it) would otherwise find the handles of
-- the previous epoch given out again.
-- A claimed namespace is only read: a server at its maxmemory refuses a script's first write (HSETNX even
-- when it would change nothing), and opening an index on a full server must still work.
local claimed = redis.call('HMGET', KEYS[1], 'fingerprint', 'epoch')
if claimed[1] and claimed[2] then return claimed end
redis.call('HSETNX', KEYS[1], 'fingerprint', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'seq0', ARGV[3])
end
return redis.call('HMGET', KEYS[1], 'fingerprint', 'epoch')
