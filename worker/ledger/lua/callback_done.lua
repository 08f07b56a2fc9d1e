-- KEYS: delivery (hash), the message's callbacks in order (list), due (zset), stats (hash)
-- ARGV: entry, lease (the due time `callback_take` gave it; '' when dropped by an operator's
--       step), the next callback's due time, outcome (its counter in stats), the last
--       attempt's counter in stats ('' for none), seconds the done mark is kept
-- -> 1 when done, 0 when it was done already or the lease is no longer this caller's
-- The done mark stays a while so that a change read twice (at least once) is not sent twice.
local delivery, queue, due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entry, lease, next_due, outcome, counter, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if lease ~= '' and tonumber(redis.call('ZSCORE', due, entry)) ~= tonumber(lease) then return 0 end
if redis.call('HGET', delivery, 'state') ~= 'pending' then return 0 end
redis.call('ZREM', due, entry)
redis.call('LREM', queue, 1, entry)
local following = redis.call('LINDEX', queue, 0)
if following then redis.call('ZADD', due, 'NX', next_due, following) end
redis.call('DEL', delivery)
redis.call('HSET', delivery, 'state', 'done', 'outcome', outcome)
redis.call('EXPIRE', delivery, tonumber(keep))
redis.call('HINCRBY', stats, 'pending', -1)
redis.call('HINCRBY', stats, outcome, 1)
if counter ~= '' then redis.call('HINCRBY', stats, counter, 1) end
return 1
