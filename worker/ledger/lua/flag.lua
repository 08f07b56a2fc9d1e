-- KEYS: record
-- ARGV: field, value, ...
-- -> 1 when set, 0 when the record does not exist
-- Set fields of a record that exists (a late write must not create a stub record).
local record = KEYS[1]
local first_field = 1

if redis.call('EXISTS', record) == 0 then return 0 end
redis.call('HSET', record, unpack(ARGV, first_field))
return 1
