-- ARGV: ns, bands, rows, family, ... -> 1.  The splits a streamed article's FIND deferred (see DEFER in
-- lib_shards.lua): the client sends it right after FIND's answer and reads its answer only before its
-- next call.  Splitting moves no field out of where the family's state
-- says it is, so it needs no write version (INGEST's checks compare bucket values, which it leaves as they
-- are).  An emptied namespace has no family left to split; in another epoch check_epoch refuses it (and
-- the client drops that answer: its next call learns of the epoch).
check_epoch(false)
for i = 4, #ARGV do lh_want(ARGV[i]) end
for i = 4, #ARGV do
  local s = lh(ARGV[i])
  if s.n > 0 then lh_split(ARGV[i], s, LOAD) end
end
lh_flush()
return 1
