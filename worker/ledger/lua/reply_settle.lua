-- KEYS: the reply's key
-- ARGV: the pending value the request claimed it with, the answer to keep (`d|…`; empty:
--       free the key), seconds to keep the answer
-- -> 1 when kept or freed, 0 when another request holds the key now (left alone)
local reply = KEYS[1]
local pending, answer, keep = ARGV[1], ARGV[2], ARGV[3]

local found = redis.call('GET', reply)
if found and found ~= pending then return 0 end
if answer == '' then
  if found then redis.call('DEL', reply) end
  return 1
end
redis.call('SET', reply, answer, 'EX', keep)
return 1
