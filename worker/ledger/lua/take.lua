#!lua
-- KEYS: unacked, unacked_index, then the queue keys (kombu's BRPOP keys, in order)
-- ARGV: now, acks (a '1' for each queue key whose consumer acknowledges, a '0' for one
--       consuming without acks)
-- -> {position of the queue key, item, delivery tag or false} | nil when every queue is empty
-- Pops the first message of the queues and, for a consumer that acknowledges, records its
-- unacked entry in the same step (kombu writes no entry for the others: nobody would remove
-- it). The entry is `[item, exchange, routing_key]` as kombu's QoS.append writes it, built
-- around the item as it was on the list: cjson would write an empty array as {}. `#!lua`
-- makes it a script Redis knows to write: a full Redis refuses it before it pops.
local unacked, index = KEYS[1], KEYS[2]
local now, acks = ARGV[1], ARGV[2]
local first_queue = 3

local function name(value)
  return type(value) == 'string' or value == cjson.null
end
local function record(item)
  local ok, message = pcall(cjson.decode, item)
  if not ok or type(message) ~= 'table' or type(message['properties']) ~= 'table' then
    return false
  end
  local tag, info = message['properties']['delivery_tag'], message['properties']['delivery_info']
  if type(tag) ~= 'string' or tag == '' or type(info) ~= 'table' then return false end
  local exchange, routing_key = info['exchange'], info['routing_key']
  if not (name(exchange) and name(routing_key)) then return false end
  redis.call('HSET', unacked, tag,
    '[' .. item .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
  redis.call('ZADD', index, now, tag)
  return tag
end
for i = first_queue, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local position = i - first_queue + 1
    return {position, item, string.sub(acks, position, position) == '1' and record(item)}
  end
end
return nil
