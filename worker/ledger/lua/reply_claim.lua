-- KEYS: the reply's key
-- ARGV: the pending value (`p|{token}|{fingerprint}`), seconds the claim holds
-- -> false when this call claimed the key, else the value found there (pending or answered)
local reply = KEYS[1]
local pending, hold = ARGV[1], ARGV[2]

local found = redis.call('GET', reply)
if found then return found end
redis.call('SET', reply, pending, 'EX', hold)
return false
