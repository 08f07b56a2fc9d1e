-- KEYS: record, events, leases, queued, pause, held, rate, slow, changes
-- ARGV: id, now, at (now as ISO), lease_until, rate_per_second, burst, op, changes_maxlen
-- -> {'claimed', attempts, payload, channel, provider, in_doubt, resends, reconcile, reconciled,
--     probe ('1': the first claim after a slow-down ended), free_tries}
--  | {'skip', status} | {'missing'} | {'held'} | {'wait', seconds}
-- A message is never claimed before its due time: a task that runs early (an ETA timer that
-- fires a few milliseconds ahead, a dispatch without ETA) is told to wait. While a provider
-- asked every caller to slow down (`slow`: the time its Retry-After ends), nobody claims.
-- uses: change.lua
local record, events, leases, queued, pause, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local rate_key, slow, changes = KEYS[7], KEYS[8], KEYS[9]
local id, now, at, lease_until = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local rate, burst, op, maxlen = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]

local head = redis.call('HMGET', record, 'status', 'due', 'claim_op')
local status = head[1]
if not status then return {'missing'} end
local function claimed(attempts, probe)
  local row = redis.call('HMGET', record, 'payload', 'channel', 'provider', 'in_doubt', 'resends',
                         'reconcile', 'reconciled', 'free_tries')
  return {'claimed', attempts, row[1] or '', row[2] or '', row[3] or '', row[4] or '', row[5] or '0',
          row[6] or '', row[7] or '', probe, row[8] or '0'}
end
if status == 'sending' and op ~= '' and head[3] == op then
  return claimed(tonumber(redis.call('HGET', record, 'attempts')), '')
end
if status ~= 'queued' and status ~= 'scheduled' then return {'skip', status} end
local due = tonumber(head[2] or '')
if due and due > now then return {'wait', tostring(due - now)} end
if redis.call('EXISTS', pause) == 1 then
  redis.call('ZADD', held, now, id)
  redis.call('ZREM', queued, id)
  return {'held'}
end
local probe = ''
local slowed = redis.call('HMGET', slow, 'until', 'step')
if slowed[1] then
  if tonumber(slowed[1]) > now then return {'wait', tostring(tonumber(slowed[1]) - now)} end
  -- the wait is over: this one claim probes the provider while the others wait a step more
  redis.call('HSET', slow, 'until', tostring(now + tonumber(slowed[2] or '1')))
  probe = '1'
end
if rate > 0 then
  local interval = 1.0 / rate
  local tat = tonumber(redis.call('GET', rate_key) or '0')
  if tat < now then tat = now end
  local allowed_from = tat - (burst - 1) * interval
  if now < allowed_from then return {'wait', tostring(allowed_from - now)} end
  redis.call('SET', rate_key, tostring(tat + interval), 'EX', 60)
end
local attempts = redis.call('HINCRBY', record, 'attempts', 1)
redis.call('HSET', record, 'status', 'sending', 'lease_until', lease_until, 'updated_at', at,
           'claim_op', op, 'error', '')
redis.call('ZADD', leases, tonumber(lease_until), id)
redis.call('ZREM', queued, id)
redis.call('RPUSH', events, cjson.encode({type = 'sending', at = at, attempt = attempts}))
change(changes, maxlen, record, id, 'sending', status, at)
return claimed(attempts, probe)
