-- KEYS: record, events, pause, target index (a placeholder when none), changes, then every
--       index the message may sit in (it leaves them all, and enters the target)
-- ARGV: id, token (attempt number or ''), expect (comma list), to, at, history entry,
--       enter ('1': enter the target), score, expire_seconds, attempts_delta, pause_json (or ''),
--       guard (a field that must not be '1', or ''), op, erase ('1': drop the payload and what
--       was kept only to send it), changes_maxlen, field, value, ...
-- -> {'ok', previous_status} | {'stale', current_status} | {'guarded', status} | {'missing'}
-- `op`, the caller's token for this one call, makes a call sent again by redis-py answer as
-- its first run did instead of finding the message moved on (by itself).
-- The change stream gets an entry when the status changes: a message that stays where it is
-- (a wait, a hold for a decision) changes its record and history only.
-- uses: change.lua
local record, events, pause, target, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, token, expect, to, at, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local enter, score, ttl, delta = ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local reason, guard, op, erase, maxlen = ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]
local first_index, first_field = 6, 16

local row = redis.call('HMGET', record, 'status', 'attempts', 'last_op')
local status = row[1]
if not status then return {'missing'} end
if op ~= '' and row[3] == op then return {'ok', status} end
local allowed = false
for s in string.gmatch(expect, '[^,]+') do
  if s == status then allowed = true end
end
if not allowed or (token ~= '' and token ~= row[2]) then return {'stale', status} end
if guard ~= '' and redis.call('HGET', record, guard) == '1' then return {'guarded', status} end
local fields = {'status', to, 'updated_at', at}
if op ~= '' then
  fields[#fields + 1] = 'last_op'
  fields[#fields + 1] = op
end
for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', record, unpack(fields))
if erase == '1' then redis.call('HDEL', record, 'payload', 'reconciled') end
if delta ~= 0 then redis.call('HINCRBY', record, 'attempts', delta) end
redis.call('RPUSH', events, entry)
for i = first_index, #KEYS do redis.call('ZREM', KEYS[i], id) end
if enter == '1' then redis.call('ZADD', target, tonumber(score), id) end
if reason ~= '' then redis.call('SET', pause, reason, 'NX') end
if ttl > 0 then
  redis.call('EXPIRE', record, ttl)
  redis.call('EXPIRE', events, ttl)
end
if to ~= status then change(changes, maxlen, record, id, to, status, at) end
return {'ok', status}
