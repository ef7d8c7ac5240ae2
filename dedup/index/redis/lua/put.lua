-- ARGV: ns, bands, rows, id, record
check_epoch(true)
begin_write()
put(ARGV[4], ARGV[5])
finish()
return 1
