-- KEYS: due (zset: entry -> due time)
-- ARGV: now, lease until (epoch seconds), most entries to take
-- -> the entries due by now, each now due again at `lease until`: a dispatcher that dies
--    while it calls leaves its callback to be taken again once the lease ends.
local due = KEYS[1]
local now, lease, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])

local ready = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
for _, entry in ipairs(ready) do redis.call('ZADD', due, 'XX', lease, entry) end
return ready
