-- KEYS: expiries, scheduled, queued, changes, then the held and short indexes of every
--       provider (ARGV's index_count of them), then the record and events of each candidate
-- ARGV: now, at (now as ISO), retention (seconds an expired message is kept), changes_maxlen,
--       index_count, then the id of each candidate (in the order of their keys)
-- -> {{ids that ended expired}, kept (candidates left in `expiries`: in a provider call)}
-- A candidate still in `expiries` with a score <= now that is waiting (queued or scheduled,
-- not in doubt) ends `expired` and leaves every index it may sit in; one in a provider call
-- (`sending`, not in doubt) stays, since it may come back to wait; any other (ended, handed
-- over, in doubt, or without its record) only leaves `expiries`. An expired message keeps its
-- payload (for a redrive) until its retention ends, as at the claim.
-- uses: change.lua
local expiries, scheduled, queued, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, at, retention, maxlen = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local index_count = tonumber(ARGV[5])
local first_index, first_id = 5, 6
local first_record = first_index + index_count
local error = 'expired: not handed to a provider before its expires_at'

local ended, kept = {}, 0
for i = first_id, #ARGV do
  local id = ARGV[i]
  local record = KEYS[first_record + (i - first_id) * 2]
  local events = KEYS[first_record + (i - first_id) * 2 + 1]
  local score = redis.call('ZSCORE', expiries, id)
  if score and tonumber(score) <= now then
    local row = redis.call('HMGET', record, 'status', 'in_doubt', 'expires_at')
    local status, in_doubt = row[1], row[2] == '1'
    if (status == 'queued' or status == 'scheduled') and not in_doubt then
      redis.call('HSET', record, 'status', 'expired', 'updated_at', at, 'error', error)
      redis.call('HDEL', record, 'reconciled')  -- its payload stays, as claim.lua keeps it
      redis.call('RPUSH', events, cjson.encode({type = 'expired', at = at, error = error,
                                                expires_at = row[3]}))
      redis.call('ZREM', scheduled, id)
      redis.call('ZREM', queued, id)
      for k = first_index, first_record - 1 do redis.call('ZREM', KEYS[k], id) end
      redis.call('ZREM', expiries, id)
      redis.call('EXPIRE', record, retention)
      redis.call('EXPIRE', events, retention)
      change(changes, maxlen, record, id, 'expired', status, at)
      ended[#ended + 1] = id
    elseif status == 'sending' and not in_doubt then
      kept = kept + 1
    else
      redis.call('ZREM', expiries, id)
    end
  end
end
return {ended, kept}
