-- KEYS: delivery (hash), the message's callbacks in order (list), due (zset), stats (hash)
-- ARGV: entry (the change's stream id), due time (epoch seconds), replay ('1': queue again a
--       callback already done), then the delivery's fields as name/value pairs
-- -> 1 when queued, 0 when it is queued already (pending, or done and not a replay)
-- Only the first callback of a message waits in `due`: the next one enters it when the one
-- before is done, so that a message's callbacks go out in order.
local delivery, queue, due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entry, at, replay = ARGV[1], ARGV[2], ARGV[3]

local state = redis.call('HGET', delivery, 'state')
if state == 'pending' or (state and replay ~= '1') then return 0 end
redis.call('DEL', delivery)
redis.call('HSET', delivery, 'state', 'pending', 'attempts', '0', unpack(ARGV, 4))
redis.call('RPUSH', queue, entry)
if redis.call('LLEN', queue) == 1 then redis.call('ZADD', due, at, entry) end
redis.call('HINCRBY', stats, 'pending', 1)
redis.call('HINCRBY', stats, replay == '1' and 'replayed' or 'queued', 1)
return 1
