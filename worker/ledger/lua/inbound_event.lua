-- KEYS: delivery (the delivery id's key), record, events
-- ARGV: keep_seconds, history entry
-- -> 'recorded' | 'duplicate' (the delivery id was seen: nothing appended) | 'missing' (no record)
-- A provider's webhook event appended to a message's events and its delivery id remembered in
-- one step: the same delivery never appends twice, and one that failed half way is applied
-- when it comes again.
local delivery, record, events = KEYS[1], KEYS[2], KEYS[3]
local keep, entry = tonumber(ARGV[1]), ARGV[2]

if redis.call('EXISTS', delivery) == 1 then return 'duplicate' end
if redis.call('EXISTS', record) == 0 then return 'missing' end
redis.call('SET', delivery, '1', 'EX', keep)
redis.call('RPUSH', events, entry)
return 'recorded'
