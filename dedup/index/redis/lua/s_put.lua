-- ARGV: ns, bands, rows, id, record, fields -> {handle, todo...}, or {false} when the id is stored
-- (the client deletes the stored version first: only it can hand over the record, see S_DELETE)
check_epoch(true)
want_write_fams(day_tag(rec_day(ARGV[5])))
if handle_exists(ARGV[4]) then return {false} end
begin_write()
local hb = put(ARGV[4], ARGV[5], nil, true, nil, split_fields(ARGV[6]))
finish()
return {hb, unpack(TODO)}
