-- create(m): record one new message, for create.lua and create_many.lua. `m` holds its keys
-- (record, events, idem, target, changes, expiries; '' for an idem or target it has none of)
-- and its values (id, ttl, hash, status, score, entry, fields, op, life, at, maxlen). A waiting
-- message with an `expires` field enters `expiries` too, scored by it.
-- -> {'created', id, status} | {'exists', id, status} | {'duplicate', first id, ''}
--  | {'conflict', first id, ''}
-- `op` is the caller's token for this one call: a call that redis-py sends again (a timeout on
-- a stalled server, a new connection) finds its own earlier run and answers as it did.
local function create(m)
  if redis.call('EXISTS', m.record) == 1 then
    local row = redis.call('HMGET', m.record, 'status', 'create_op')
    if m.op ~= '' and row[2] == m.op then return {'created', m.id, row[1] or ''} end
    return {'exists', m.id, row[1] or ''}
  end
  if m.idem ~= '' then
    local existing = redis.call('GET', m.idem)
    if existing then
      local sep = string.find(existing, '|', 1, true)
      local first = string.sub(existing, 1, sep - 1)
      if string.sub(existing, sep + 1) == m.hash then return {'duplicate', first, ''} end
      return {'conflict', first, ''}
    end
    redis.call('SET', m.idem, m.id .. '|' .. m.hash, 'EX', tonumber(m.ttl))
  end
  redis.call('HSET', m.record, unpack(m.fields))
  if m.op ~= '' then redis.call('HSET', m.record, 'create_op', m.op) end
  redis.call('RPUSH', m.events, m.entry)
  local life = tonumber(m.life)
  if life > 0 then
    redis.call('EXPIRE', m.record, life)
    redis.call('EXPIRE', m.events, life)
  end
  if m.target ~= '' then redis.call('ZADD', m.target, tonumber(m.score), m.id) end
  if m.target ~= '' and m.expiries and m.expiries ~= '' then
    for i = 1, #m.fields - 1, 2 do
      if m.fields[i] == 'expires' then redis.call('ZADD', m.expiries, tonumber(m.fields[i + 1]), m.id) end
    end
  end
  change(m.changes, m.maxlen, m.record, m.id, m.status, '', m.at)
  return {'created', m.id, m.status}
end
