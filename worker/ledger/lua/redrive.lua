-- KEYS: old record, old events, the ended index it sits in, new record, new events, idempotency
--       key of the redrive, index the new message enters, changes, expiries, broker queue ('' for
--       none)
-- ARGV: old id, expected status (failed | expired), at, op, then the new message as create.lua
--       takes it: id, idem_ttl, request_hash, status, score, history entry, record_ttl,
--       changes_maxlen, task message ('' for none), field, value, ...
-- -> {'redriven', new id, status} | {'done', new id} (redriven before) | {'stale', status}
--  | {'missing'} | {'empty'} (no payload to send) | {'duplicate'|'conflict', first id, ''}
-- Sends an ended message again as a new one, linked both ways, in one step: the new record
-- (and its broker task), then the old record's `redriven_to`, its `redriven` event, its payload
-- erased and its place in the ended index given up. A crash never leaves one without the other,
-- and a second redrive finds `redriven_to` and makes nothing.
-- uses: change.lua, create_record.lua
local old, old_events, ended = KEYS[1], KEYS[2], KEYS[3]
local record, events, idem, target, changes = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local expiries, queue = KEYS[9], KEYS[10]
local old_id, expect, at, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local id, ttl, hash, status, score, entry = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local life, maxlen, task = ARGV[11], ARGV[12], ARGV[13]
local first_field = 14

local row = redis.call('HMGET', old, 'status', 'redriven_to', 'payload')
if not row[1] then
  redis.call('ZREM', ended, old_id)
  return {'missing'}
end
if row[2] then
  redis.call('ZREM', ended, old_id)
  return {'done', row[2]}
end
if row[1] ~= expect then return {'stale', row[1]} end
if not row[3] or row[3] == '' or row[3] == '{}' then return {'empty'} end

local fields = {}
for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
local reply = create({record = record, events = events, idem = idem, target = target, changes = changes,
                      expiries = expiries, id = id, ttl = ttl, hash = hash, status = status, score = score, entry = entry,
                      fields = fields, op = op, life = life, at = at, maxlen = maxlen})
if reply[1] ~= 'created' and reply[1] ~= 'duplicate' then return reply end
if reply[1] == 'created' and queue ~= '' and task ~= '' then redis.call('LPUSH', queue, task) end
redis.call('HSET', old, 'redriven_to', reply[2], 'updated_at', at)
redis.call('HDEL', old, 'payload', 'reconciled')
redis.call('RPUSH', old_events, cjson.encode({type = 'redriven', at = at, redriven_to = reply[2]}))
redis.call('ZREM', ended, old_id)
if reply[1] == 'duplicate' then return {'done', reply[2]} end
return {'redriven', reply[2], reply[3]}
