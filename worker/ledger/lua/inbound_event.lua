-- KEYS: delivery (the delivery id's key), body (the signed body's key), record, events
-- ARGV: keep_seconds, history entry
-- -> 'recorded' | 'duplicate' (the delivery id or the body was seen: nothing appended) | 'missing' (no record)
-- A provider's webhook event appended to a message's events and its delivery id and body
-- remembered in one step: the same delivery never appends twice, nor does the same signed body
-- under a new delivery id, and one that failed half way is applied when it comes again.
local delivery, body, record, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local keep, entry = tonumber(ARGV[1]), ARGV[2]

if redis.call('EXISTS', delivery, body) > 0 then return 'duplicate' end
if redis.call('EXISTS', record) == 0 then return 'missing' end
redis.call('SET', delivery, '1', 'EX', keep)
redis.call('SET', body, '1', 'EX', keep)
redis.call('RPUSH', events, entry)
return 'recorded'
