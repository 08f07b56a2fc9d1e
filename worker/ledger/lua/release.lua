-- KEYS: source index, queued, changes, then the record and events of each candidate
-- ARGV: limit, now, at (now as ISO), score_mode ('due' keeps each member's own score, 'now'
--       scores it `now` and clears its error), accept (comma list of statuses),
--       changes_maxlen, then the id of each candidate (in the order of their keys)
-- -> {{id, channel, provider, score, lane, ...}, {ids whose record is gone}}
-- Candidates (read by the caller) still in `source` with a score <= limit move back into
-- `queued`; one that another caller moved meanwhile is left alone.
-- uses: change.lua
local source, queued, changes = KEYS[1], KEYS[2], KEYS[3]
local limit, now, at, score_mode, accept = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxlen = ARGV[6]
local first_key, first_id = 4, 7

local out = {}
local gone = {}
for i = first_id, #ARGV do
  local id = ARGV[i]
  local record = KEYS[first_key + (i - first_id) * 2]
  local events = KEYS[first_key + (i - first_id) * 2 + 1]
  local score = redis.call('ZSCORE', source, id)
  if score and tonumber(score) <= limit then
    local row = redis.call('HMGET', record, 'status', 'channel', 'provider', 'lane')
    redis.call('ZREM', source, id)
    local ok = false
    if row[1] then
      for s in string.gmatch(accept, '[^,]+') do if s == row[1] then ok = true end end
    else
      gone[#gone + 1] = id
    end
    if ok then
      local new_score = score
      if score_mode == 'now' then
        new_score = now
        redis.call('HSET', record, 'error', '')
      end
      if row[1] ~= 'queued' then
        redis.call('HSET', record, 'status', 'queued', 'updated_at', at)
        redis.call('RPUSH', events, cjson.encode({type = 'queued', at = at}))
        change(changes, maxlen, record, id, 'queued', row[1], at)
      end
      redis.call('ZADD', queued, tonumber(new_score), id)
      out[#out + 1] = id
      out[#out + 1] = row[2]
      out[#out + 1] = row[3]
      out[#out + 1] = score
      out[#out + 1] = row[4] or ''
    end
  end
end
return {out, gone}
