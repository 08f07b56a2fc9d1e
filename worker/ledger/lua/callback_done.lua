-- KEYS: delivery (hash), the message's pending callbacks (zset), due (zset: message id ->
--       due time), stats (hash)
-- ARGV: place (the callback's in the message's zset), message id, lease (the due time
--       `callback_take` gave the message; '' when dropped by an operator's step), the next
--       callback's due time, outcome (its counter in stats), the last attempt's counter in
--       stats ('' for none), seconds the done mark is kept
-- -> 1 when done, 0 when it was done already or the lease is no longer this caller's
-- A lease holder whose callback was done meanwhile still frees the message for its next one.
-- The done mark stays a while so that a change read twice (at least once) is not sent twice.
local delivery, queue, due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local place, message, lease, next_due = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local outcome, counter, keep = ARGV[5], ARGV[6], ARGV[7]

local leased = lease ~= '' and tonumber(redis.call('ZSCORE', due, message)) == tonumber(lease)
if lease ~= '' and not leased then return 0 end
local pending = redis.call('HGET', delivery, 'state') == 'pending'
redis.call('ZREM', queue, place)
if redis.call('ZCARD', queue) == 0 then
  redis.call('ZREM', due, message)
elseif leased then
  redis.call('ZADD', due, next_due, message)
else
  redis.call('ZADD', due, 'NX', next_due, message)
end
if not pending then return 0 end
redis.call('DEL', delivery)
redis.call('HSET', delivery, 'state', 'done', 'outcome', outcome)
redis.call('EXPIRE', delivery, tonumber(keep))
redis.call('HINCRBY', stats, 'pending', -1)
redis.call('HINCRBY', stats, outcome, 1)
if counter ~= '' then redis.call('HINCRBY', stats, counter, 1) end
return 1
