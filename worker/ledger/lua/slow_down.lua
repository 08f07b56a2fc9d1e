-- KEYS: slow
-- ARGV: until (epoch seconds), step (seconds), ttl (seconds)
-- -> 1
-- A provider asked to slow down (429 with Retry-After): no claim for it before `until`, and
-- then one claim per `step` seconds (a probe) until a probe gets through (the caller then
-- deletes `slow`).
local slow = KEYS[1]
local until_time, step, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])

local current = tonumber(redis.call('HGET', slow, 'until') or '0')
if tonumber(until_time) > current then redis.call('HSET', slow, 'until', until_time) end
redis.call('HSET', slow, 'step', step)
redis.call('EXPIRE', slow, ttl)
return 1
