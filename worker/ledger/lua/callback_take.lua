-- KEYS: due (zset: message id -> when its first pending callback is due)
-- ARGV: now, lease until (epoch seconds), most messages to take
-- -> the messages due by now, each now due again at `lease until`: a dispatcher that dies
--    while it calls leaves the message's callback to be taken again once the lease ends.
local due = KEYS[1]
local now, lease, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])

local ready = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
for _, message in ipairs(ready) do redis.call('ZADD', due, 'XX', lease, message) end
return ready
