-- KEYS: queued, then the record and the broker queue ('' when unknown) of each candidate
-- ARGV: limit, now, hard_limit, then the id of each candidate (in the order of their keys)
-- -> {{id, channel, provider, lane, ...}, {ids whose record is gone}}
-- Queued messages whose broker task may be lost: bump their score and return them. A
-- `scheduled` member waits as an ETA task in some worker's memory (due within the ETA window
-- when it was recorded); a worker killed while holding it loses it just the same. While its
-- broker queue still holds tasks, a message may simply be waiting in it: it is left alone
-- until the queue drains, or until it is overdue past `hard_limit` (a backlog must not be
-- enqueued twice over). A candidate no longer in `queued`, or no longer overdue, is left alone.
local queued = KEYS[1]
local limit, now, hard_limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local first_key, first_id = 2, 4

local out = {}
local gone = {}
local busy = {}
for i = first_id, #ARGV do
  local id = ARGV[i]
  local record = KEYS[first_key + (i - first_id) * 2]
  local queue = KEYS[first_key + (i - first_id) * 2 + 1]
  local score = tonumber(redis.call('ZSCORE', queued, id) or '')
  if score and score <= limit then
    local row = redis.call('HMGET', record, 'status', 'channel', 'provider', 'lane')
    if row[1] == 'queued' or row[1] == 'scheduled' then
      if busy[queue] == nil then
        busy[queue] = queue ~= '' and redis.call('LLEN', queue) > 0
      end
      if not busy[queue] or score <= hard_limit then
        redis.call('ZADD', queued, now, id)
        out[#out + 1] = id
        out[#out + 1] = row[2] or ''
        out[#out + 1] = row[3] or ''
        out[#out + 1] = row[4] or ''
      end
    else
      if not row[1] then gone[#gone + 1] = id end
      redis.call('ZREM', queued, id)
    end
  end
end
return {out, gone}
