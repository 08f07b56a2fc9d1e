-- KEYS: leases, then the record of each candidate
-- ARGV: now, new_lease, then the id of each candidate (in the order of their records)
-- -> {{id, provider, attempts, channel, lane, ...}, {ids whose record is gone}}
-- Claims whose lease expired: extend the lease so one caller owns the recovery. A candidate
-- whose lease another caller extended meanwhile is left alone.
local leases = KEYS[1]
local now, new_lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local first_record, first_id = 2, 3

local out = {}
local gone = {}
for i = first_id, #ARGV do
  local id = ARGV[i]
  local record = KEYS[first_record + i - first_id]
  local score = tonumber(redis.call('ZSCORE', leases, id) or '')
  if score and score <= now then
    local row = redis.call('HMGET', record, 'status', 'provider', 'attempts', 'channel', 'lane')
    if row[1] == 'sending' then
      redis.call('ZADD', leases, new_lease, id)
      out[#out + 1] = id
      out[#out + 1] = row[2] or ''
      out[#out + 1] = row[3] or ''
      out[#out + 1] = row[4] or ''
      out[#out + 1] = row[5] or ''
    else
      if not row[1] then gone[#gone + 1] = id end
      redis.call('ZREM', leases, id)
    end
  end
end
return {out, gone}
