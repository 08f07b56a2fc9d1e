-- change(stream, maxlen, record, id, status, previous, at, error, recipient): append one status
-- change to the change stream, with where the record stands after it. `error` (when not nil)
-- replaces the record's own error; `recipient` (when not nil) names a campaign recipient. The
-- entry says what happened to a message, never to whom it goes nor what it says.
-- A message that ends `failed` or `expired` also enters the index `ended:{status}` (id -> when
-- it ended, epoch seconds), which `hudhud redrive` reads. That key is not in the caller's KEYS:
-- it is built from the record key's prefix (`{prefix}m:{id}` -> `{prefix}ended:{status}`), which
-- a Redis that is not a cluster allows; with Redis Cluster every caller would pass it instead.
-- Entries older than the record's retention (its TTL, set before this runs) are trimmed here.
-- Every change is also counted, in the same way outside KEYS, for the metrics:
-- `stats:messages` (or `stats:recipients` for a campaign recipient) `channel|provider|status`
-- -> count, and a message handed over (`sent`) adds the seconds from its creation (or its due
-- time, when scheduled) to `stats:send`: `channel|provider|le` bucket counts (each bucket
-- counts what no smaller one does), `channel|provider|sum` and `channel|provider|count`.
local function epoch_of(iso)
  -- `at` is the caller's ISO time in UTC (2026-12-02T11:18:36.123Z): days from the civil date
  local y, mo, d, h, mi, s = string.match(iso, '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)')
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + tonumber(d) - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

local SEND_BUCKETS = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}

local function prefix_of(record, id)
  local prefix = string.sub(record, 1, #record - #id - 2)
  if string.sub(record, #prefix + 1) ~= 'm:' .. id then return nil end
  return prefix
end

local function count_send(prefix, series, started, at)
  local from, to = epoch_of(started or ''), epoch_of(at)
  if not from or not to then return end
  local seconds = math.max(0, to - from)
  local le = '+Inf'
  for _, bound in ipairs(SEND_BUCKETS) do
    if seconds <= bound then le = tostring(bound); break end
  end
  local send = prefix .. 'stats:send'
  redis.call('HINCRBY', send, series .. '|' .. le, 1)
  redis.call('HINCRBYFLOAT', send, series .. '|sum', seconds)
  redis.call('HINCRBY', send, series .. '|count', 1)
end

local function count(prefix, row, status, previous, recipient, at)
  local series = (row[1] or '') .. '|' .. (row[2] or '')
  local counted = prefix .. (recipient and 'stats:recipients' or 'stats:messages')
  redis.call('HINCRBY', counted, series .. '|' .. status, 1)
  if status == 'sent' and previous == 'sending' and not recipient then
    local due = row[8]
    local started = row[7]
    if due and due ~= '' and (not started or due > started) then started = due end
    count_send(prefix, series, started, at)
  end
end

local function enter_ended(record, id, status, at)
  local prefix = prefix_of(record, id)
  if not prefix then return end
  local ended, moment = prefix .. 'ended:' .. status, epoch_of(at)
  if not moment then return end
  redis.call('ZADD', ended, moment, id)
  local retention = redis.call('TTL', record)
  if retention > 0 then
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', '(' .. tostring(moment - retention))
    redis.call('EXPIRE', ended, retention)
  end
end

local function change(stream, maxlen, record, id, status, previous, at, error, recipient)
  local row = redis.call('HMGET', record, 'channel', 'provider', 'lane', 'reference', 'attempts',
                         'error', 'created_at', 'at')
  local entry = {'id', id, 'status', status, 'previous', previous, 'channel', row[1] or '',
                 'provider', row[2] or '', 'lane', row[3] or '', 'reference', row[4] or '',
                 'at', at, 'attempt', row[5] or '0', 'error', error or row[6] or ''}
  if recipient then
    entry[#entry + 1] = 'recipient'
    entry[#entry + 1] = recipient
  end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(entry))
  local prefix = prefix_of(record, id)
  if prefix then count(prefix, row, status, previous, recipient, at) end
  if not recipient and (status == 'failed' or status == 'expired') then
    enter_ended(record, id, status, at)
  end
end
