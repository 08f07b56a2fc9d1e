"""Lua scripts that make each ledger transition one atomic Redis round trip.

Conventions: KEYS hold every key a script touches; ARGV[1] is the message id; times are
epoch seconds (floats) and ISO strings passed in by the caller, so scripts never read clocks.
"""

# create(msg, events, idem or "", target zset or "", id, idem_ttl, request_hash, status,
#        score, event_json, fields, op, record_ttl) -> {outcome, id, status}
# `op` is the caller's token for this one call: a call that redis-py sends again (a timeout
# on a stalled server, a new connection) finds its own earlier run and answers as it did.
_CREATE_ONE = """
local function create(mkey, ekey, ikey, target, id, ttl, hash, status, score, ev, fields, op, life)
  if redis.call('EXISTS', mkey) == 1 then
    local row = redis.call('HMGET', mkey, 'status', 'create_op')
    if op ~= '' and row[2] == op then return {'created', id, row[1] or ''} end
    return {'exists', id, row[1] or ''}
  end
  if ikey ~= '' then
    local existing = redis.call('GET', ikey)
    if existing then
      local sep = string.find(existing, '|', 1, true)
      local eid = string.sub(existing, 1, sep - 1)
      if string.sub(existing, sep + 1) == hash then
        return {'duplicate', eid, redis.call('HGET', 'hudhud:m:' .. eid, 'status') or ''}
      end
      return {'conflict', eid, ''}
    end
    redis.call('SET', ikey, id .. '|' .. hash, 'EX', tonumber(ttl))
  end
  redis.call('HSET', mkey, unpack(fields))
  if op ~= '' then redis.call('HSET', mkey, 'create_op', op) end
  redis.call('RPUSH', ekey, ev)
  if tonumber(life) > 0 then
    redis.call('EXPIRE', mkey, tonumber(life))
    redis.call('EXPIRE', ekey, tonumber(life))
  end
  if target ~= '' then redis.call('ZADD', target, tonumber(score), id) end
  return {'created', id, status}
end
"""

# KEYS: msg, events, idem (or ""), target zset (or "")
# ARGV: id, now, idem_ttl, request_hash, status, score, event_json, op, record_ttl,
#       field, value, ...
CREATE = (
    _CREATE_ONE
    + """
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
return create(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
              ARGV[7], fields, ARGV[8], ARGV[9])
"""
)

# Many messages in one call, each created as CREATE does and, when it was created, its
# broker task pushed on its queue list.
# ARGV[1]: JSON list of [id, idem_key, idem_ttl, request_hash, status, score, target,
#          event_json, fields (flat list), queue ('' for none), index of its task in ARGV,
#          record_ttl]
# ARGV[2]: the op token of this call; ARGV[3...]: the task messages
# -> flat {outcome, id, status, ...}
CREATE_MANY = (
    _CREATE_ONE
    + """
local out = {}
for _, m in ipairs(cjson.decode(ARGV[1])) do
  local id = m[1]
  local mkey = 'hudhud:m:' .. id
  local replay = redis.call('HGET', mkey, 'create_op') == ARGV[2]
  local reply = create(mkey, 'hudhud:e:' .. id, m[2], m[7], id, m[3], m[4], m[5],
                       m[6], m[8], m[9], ARGV[2], m[12])
  if reply[1] == 'created' and not replay and m[10] ~= '' then
    redis.call('LPUSH', m[10], ARGV[m[11]])
  end
  out[#out + 1] = reply[1]
  out[#out + 1] = reply[2]
  out[#out + 1] = reply[3]
end
return out
"""
)

# KEYS: msg, events, leases, queued, pause, held, rate, slow
# ARGV: id, now, now_iso, lease_until, rate_per_second, burst, op
# -> {'claimed', attempts, payload, channel, provider, in_doubt, resends, reconcile, reconciled,
#     probe ('1': the first claim after a slow-down ended), free_tries}
#  | {'skip', status} | {'missing'} | {'held'} | {'wait', seconds}
# A message is never claimed before its due time: a task that runs early (an ETA timer that
# fires a few milliseconds ahead, a dispatch without ETA) is told to wait. While a provider
# asked every caller to slow down (`slow`: the time its Retry-After ends), nobody claims.
CLAIM = """
local head = redis.call('HMGET', KEYS[1], 'status', 'due', 'claim_op')
local status = head[1]
if not status then return {'missing'} end
local function claimed(attempts, probe)
  local row = redis.call('HMGET', KEYS[1], 'payload', 'channel', 'provider', 'in_doubt', 'resends',
                         'reconcile', 'reconciled', 'free_tries')
  return {'claimed', attempts, row[1] or '', row[2] or '', row[3] or '', row[4] or '', row[5] or '0',
          row[6] or '', row[7] or '', probe, row[8] or '0'}
end
if status == 'sending' and ARGV[7] ~= '' and head[3] == ARGV[7] then
  return claimed(tonumber(redis.call('HGET', KEYS[1], 'attempts')), '')
end
if status ~= 'queued' and status ~= 'scheduled' then return {'skip', status} end
local now = tonumber(ARGV[2])
local due = tonumber(head[2] or '')
if due and due > now then return {'wait', tostring(due - now)} end
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('ZADD', KEYS[6], now, ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {'held'}
end
local probe = ''
local slow = redis.call('HMGET', KEYS[8], 'until', 'step')
if slow[1] then
  if tonumber(slow[1]) > now then return {'wait', tostring(tonumber(slow[1]) - now)} end
  -- the wait is over: this one claim probes the provider while the others wait a step more
  redis.call('HSET', KEYS[8], 'until', tostring(now + tonumber(slow[2] or '1')))
  probe = '1'
end
local rate = tonumber(ARGV[5])
if rate > 0 then
  local interval = 1.0 / rate
  local tat = tonumber(redis.call('GET', KEYS[7]) or '0')
  if tat < now then tat = now end
  local allowed_from = tat - (tonumber(ARGV[6]) - 1) * interval
  if now < allowed_from then return {'wait', tostring(allowed_from - now)} end
  redis.call('SET', KEYS[7], tostring(tat + interval), 'EX', 60)
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'sending', 'lease_until', ARGV[4], 'updated_at', ARGV[3],
           'claim_op', ARGV[7], 'error', '')
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]), ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('RPUSH', KEYS[2], cjson.encode({type = 'sending', at = ARGV[3], attempt = attempts}))
return claimed(attempts, probe)
"""

# Set fields of a record that exists (a late write must not create a stub record).
# KEYS: msg; ARGV: field, value, ...
FLAG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# A provider asked to slow down (429 with Retry-After): no claim for it before `until`, and
# then one claim per `step` seconds (a probe) until a probe gets through (CLEAR_SLOW).
# KEYS: slow hash; ARGV: until (epoch seconds), step, ttl_seconds
SLOW_DOWN = """
local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'until', ARGV[1]) end
redis.call('HSET', KEYS[1], 'step', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS: msg, events, pause, target zset (a placeholder when none), then every index the
#       message may sit in (it leaves them all, and enters the target)
# ARGV: id, token (attempt number or ''), expect_status, new_status, now_iso, event_json,
#       zset_flag ('1': enter the target), zscore, expire_seconds, attempts_delta,
#       pause_json (or ''), guard (a field that must not be '1', or ''), op, erase ('1': drop
#       the payload and what was kept only to send it), field, value, ...
# -> {'ok', previous_status} | {'stale', current_status} | {'guarded', status} | {'missing'}
# `op`, the caller's token for this one call, makes a call sent again by redis-py answer
# as its first run did instead of finding the message moved on (by itself).
TRANSITION = """
local row = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'last_op')
local status = row[1]
if not status then return {'missing'} end
if ARGV[13] ~= '' and row[3] == ARGV[13] then return {'ok', status} end
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == status then allowed = true end
end
if not allowed or (ARGV[2] ~= '' and ARGV[2] ~= row[2]) then return {'stale', status} end
if ARGV[12] ~= '' and redis.call('HGET', KEYS[1], ARGV[12]) == '1' then
  return {'guarded', status}
end
local fields = {'status', ARGV[4], 'updated_at', ARGV[5]}
if ARGV[13] ~= '' then
  fields[#fields + 1] = 'last_op'
  fields[#fields + 1] = ARGV[13]
end
for i = 15, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[14] == '1' then redis.call('HDEL', KEYS[1], 'payload', 'reconciled') end
if tonumber(ARGV[10]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'attempts', tonumber(ARGV[10])) end
redis.call('RPUSH', KEYS[2], ARGV[6])
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
if ARGV[7] == '1' then redis.call('ZADD', KEYS[4], tonumber(ARGV[8]), ARGV[1]) end
if ARGV[11] ~= '' then redis.call('SET', KEYS[3], ARGV[11], 'NX') end
local ttl = tonumber(ARGV[9])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {'ok', status}
"""

# Move members of a zset whose score <= limit back into `queued` (status checked).
# KEYS: source zset, queued zset; ARGV: limit, count, now, now_iso, new_score_mode
# ('due' keeps each member's own score, 'now' uses ARGV[3]), accept (comma list of statuses)
# -> {{id, channel, provider, score, ...}, {ids whose record is gone}}
RELEASE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES',
                        'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local gone = {}
for i = 1, #items, 2 do
  local id = items[i]
  local score = items[i + 1]
  local key = 'hudhud:m:' .. id
  local row = redis.call('HMGET', key, 'status', 'channel', 'provider')
  redis.call('ZREM', KEYS[1], id)
  local ok = false
  if row[1] then
    for s in string.gmatch(ARGV[6], '[^,]+') do if s == row[1] then ok = true end end
  else
    gone[#gone + 1] = id
  end
  if ok then
    local new_score = score
    if ARGV[5] == 'now' then new_score = ARGV[3] end
    if ARGV[5] == 'now' then redis.call('HSET', key, 'error', '') end
    if row[1] ~= 'queued' then
      redis.call('HSET', key, 'status', 'queued', 'updated_at', ARGV[4])
      redis.call('RPUSH', 'hudhud:e:' .. id, cjson.encode({type = 'queued', at = ARGV[4]}))
    end
    redis.call('ZADD', KEYS[2], tonumber(new_score), id)
    out[#out + 1] = id
    out[#out + 1] = row[2]
    out[#out + 1] = row[3]
    out[#out + 1] = score
  end
end
return {out, gone}
"""

# Queued messages whose broker task may be lost: bump their score and return them.
# A `scheduled` member waits as an ETA task in some worker's memory (due within the ETA
# window when it was recorded); a worker killed while holding it loses it just the same.
# While its channel's broker queue still holds tasks, a message may simply be waiting in it:
# it is left alone until the queue drains, or until it is overdue past ARGV[4] (a backlog
# must not be enqueued twice over).
# KEYS: queued; ARGV: limit, count, now, hard_limit
# -> {{id, channel, provider, ...}, {ids whose record is gone}}
REQUEUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES',
                        'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local gone = {}
local busy = {}
for i = 1, #items, 2 do
  local id = items[i]
  local row = redis.call('HMGET', 'hudhud:m:' .. id, 'status', 'channel', 'provider')
  if row[1] == 'queued' or row[1] == 'scheduled' then
    local channel = row[2] or ''
    if busy[channel] == nil then
      busy[channel] = channel ~= '' and redis.call('LLEN', channel) > 0
    end
    if not busy[channel] or tonumber(items[i + 1]) <= tonumber(ARGV[4]) then
      redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), id)
      out[#out + 1] = id
      out[#out + 1] = channel
      out[#out + 1] = row[3] or ''
    end
  else
    if not row[1] then gone[#gone + 1] = id end
    redis.call('ZREM', KEYS[1], id)
  end
end
return {out, gone}
"""

# Claims whose lease expired: extend the lease so one caller owns the recovery.
# KEYS: leases; ARGV: now, count, new_lease
# -> {{id, provider, attempts, ...}, {ids whose record is gone}}
EXPIRED_LEASES = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local gone = {}
for _, id in ipairs(items) do
  local row = redis.call('HMGET', 'hudhud:m:' .. id, 'status', 'provider', 'attempts')
  if row[1] == 'sending' then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), id)
    out[#out + 1] = id
    out[#out + 1] = row[2]
    out[#out + 1] = row[3]
  else
    if not row[1] then gone[#gone + 1] = id end
    redis.call('ZREM', KEYS[1], id)
  end
end
return {out, gone}
"""

# A campaign email's final status, recorded once and counted on the campaign record.
# KEYS: outcomes hash, campaign record, id key; ARGV: recipient, outcome JSON, counter field
FINISH_RECIPIENT = """
redis.call('DEL', KEYS[3])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local ttl = redis.call('TTL', KEYS[2])
if ttl > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('EXPIRE', KEYS[1], ttl)
else
  redis.call('EXPIRE', KEYS[1], 86400)
end
return 1
"""
