-- KEYS: delivery (hash), the message's pending callbacks (zset, every score 0: ordered by
--       their places), due (zset: message id -> when its first pending callback is due), stats (hash)
-- ARGV: place (the change's stream id in a fixed-width form that sorts as the stream does),
--       message id, due time (epoch seconds), replay ('1': queue again a callback already
--       done), then the delivery's fields as name/value pairs
-- -> 1 when queued, 0 when it is queued already (pending, or done and not a replay)
-- A message has one place in `due`, and the callback a dispatcher takes there is the first by
-- stream order, whatever order the callbacks were queued in: a message's callbacks go out in
-- the order of its changes, one at a time.
local delivery, queue, due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local place, message, at, replay = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local state = redis.call('HGET', delivery, 'state')
if state == 'pending' or (state and replay ~= '1') then return 0 end
redis.call('DEL', delivery)
redis.call('HSET', delivery, 'state', 'pending', 'attempts', '0', unpack(ARGV, 5))
redis.call('ZADD', queue, 0, place)
redis.call('ZADD', due, 'NX', at, message)
redis.call('HINCRBY', stats, 'pending', 1)
redis.call('HINCRBY', stats, replay == '1' and 'replayed' or 'queued', 1)
return 1
