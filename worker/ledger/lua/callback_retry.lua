-- KEYS: delivery (hash), due (zset: message id -> due time), stats (hash)
-- ARGV: message id, lease (the due time `callback_take` gave it), next try (epoch seconds),
--       attempts made, what the last one got, its counter in stats
-- -> 1 when the next try is set, 0 when the lease is no longer this caller's
local delivery, due, stats = KEYS[1], KEYS[2], KEYS[3]
local message, lease, next_try, attempts, got, counter = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if tonumber(redis.call('ZSCORE', due, message)) ~= tonumber(lease) then return 0 end
if redis.call('HGET', delivery, 'state') ~= 'pending' then return 0 end
redis.call('HSET', delivery, 'attempts', attempts, 'last', got)
redis.call('ZADD', due, 'XX', next_try, message)
redis.call('HINCRBY', stats, counter, 1)
return 1
