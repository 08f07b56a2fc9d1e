-- KEYS: record, events, leases, queued, pause, held, rate, slow, changes, suppressed, bulk_rate
-- ARGV: id, now, at (now as ISO), lease_until, rate_per_second, burst, op, changes_maxlen,
--       transactional_share (of the rate a bulk message may not take), retention (seconds a
--       message that ends here is kept)
-- -> {'claimed', attempts, payload, channel, provider, in_doubt, resends, reconcile, reconciled,
--     probe ('1': the first claim after a slow-down ended), free_tries, lane, expires,
--     suppressed (comma list of positions in to, cc, bcc)}
--  | {'skip', status} | {'missing'} | {'held'} | {'wait', seconds} | {'expired'} | {'suppressed'}
-- A message is never claimed before its due time: a task that runs early (an ETA timer that
-- fires a few milliseconds ahead, a dispatch without ETA) is told to wait. While a provider
-- asked every caller to slow down (`slow`: the time its Retry-After ends), nobody claims.
-- A message past its `expires` ends `expired`, one whose every `to` is on the suppression
-- list ends `suppressed`; neither while it is in doubt (a provider may have it already). An
-- expired message keeps its payload (for a redrive) until its retention ends.
-- uses: change.lua
local record, events, leases, queued, pause, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local rate_key, slow, changes, suppressed, bulk_rate = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local id, now, at, lease_until = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local rate, burst, op, maxlen = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local share, retention = tonumber(ARGV[9]), tonumber(ARGV[10])

local head = redis.call('HMGET', record, 'status', 'due', 'claim_op', 'expires', 'in_doubt', 'fps', 'lane')
local status = head[1]
if not status then return {'missing'} end
local in_doubt = head[5] == '1'
local lane = head[7] or 'transactional'
local skipped = {}
local function claimed(attempts, probe)
  local row = redis.call('HMGET', record, 'payload', 'channel', 'provider', 'in_doubt', 'resends',
                         'reconcile', 'reconciled', 'free_tries')
  return {'claimed', attempts, row[1] or '', row[2] or '', row[3] or '', row[4] or '', row[5] or '0',
          row[6] or '', row[7] or '', probe, row[8] or '0', lane, head[4] or '',
          table.concat(skipped, ',')}
end
local function finish(to, error, extra)
  redis.call('HSET', record, 'status', to, 'updated_at', at, 'error', error)
  -- an expired message keeps its payload, so that `hudhud redrive` can send it again
  if to == 'expired' then
    redis.call('HDEL', record, 'reconciled')
  else
    redis.call('HDEL', record, 'payload', 'reconciled')
  end
  local entry = {type = to, at = at, error = error}
  for k, v in pairs(extra) do entry[k] = v end
  redis.call('RPUSH', events, cjson.encode(entry))
  redis.call('ZREM', queued, id)
  redis.call('EXPIRE', record, retention)
  redis.call('EXPIRE', events, retention)
  change(changes, maxlen, record, id, to, status, at)
  return {to}
end
if status == 'sending' and op ~= '' and head[3] == op then
  return claimed(tonumber(redis.call('HGET', record, 'attempts')), '')
end
if status ~= 'queued' and status ~= 'scheduled' then return {'skip', status} end
local due = tonumber(head[2] or '')
if due and due > now then return {'wait', tostring(due - now)} end
local expires = tonumber(head[4] or '')
if expires and expires <= now and not in_doubt then
  return finish('expired', 'expired: not handed to a provider before its expires_at', {expires_at = redis.call('HGET', record, 'expires_at')})
end
if head[6] and head[6] ~= '' and not in_doubt then
  local position, primary, kept = 0, 0, 0
  local bar = string.find(head[6], '|', 1, true)
  local to_part = bar and string.sub(head[6], 1, bar - 1) or head[6]
  local copy_part = bar and string.sub(head[6], bar + 1) or ''
  for fp in string.gmatch(to_part, '[^,]+') do
    primary = primary + 1
    if redis.call('HEXISTS', suppressed, fp) == 1 then
      skipped[#skipped + 1] = tostring(position)
    else
      kept = kept + 1
    end
    position = position + 1
  end
  if primary > 0 and kept == 0 then
    return finish('suppressed', 'suppressed: every recipient is on the suppression list', {recipients = primary})
  end
  for fp in string.gmatch(copy_part, '[^,]+') do
    if redis.call('HEXISTS', suppressed, fp) == 1 then skipped[#skipped + 1] = tostring(position) end
    position = position + 1
  end
end
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
-- the generic cell rate algorithm: `tat` is when the limiter is next free; a bulk message must
-- pass its lane's own limiter too, at the rate the transactional share leaves it
local function admits(key, per_second)
  local interval = 1.0 / per_second
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local allowed_from = tat - (burst - 1) * interval
  return now >= allowed_from, allowed_from - now, tostring(tat + interval)
end
if rate > 0 then
  local ok, wait, next_tat = admits(rate_key, rate)
  if not ok then return {'wait', tostring(wait)} end
  if lane == 'bulk' and share > 0 then
    local bulk_ok, bulk_wait, bulk_tat = admits(bulk_rate, rate * (1 - share))
    if not bulk_ok then return {'wait', tostring(bulk_wait)} end
    redis.call('SET', bulk_rate, bulk_tat, 'EX', 60)
  end
  redis.call('SET', rate_key, next_tat, 'EX', 60)
end
local attempts = redis.call('HINCRBY', record, 'attempts', 1)
redis.call('HSET', record, 'status', 'sending', 'lease_until', lease_until, 'updated_at', at,
           'claim_op', op, 'error', '')
redis.call('ZADD', leases, tonumber(lease_until), id)
redis.call('ZREM', queued, id)
redis.call('RPUSH', events, cjson.encode({type = 'sending', at = at, attempt = attempts}))
change(changes, maxlen, record, id, 'sending', status, at)
return claimed(attempts, probe)
