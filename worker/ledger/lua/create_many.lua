-- KEYS: changes, then for each message: record, events, idempotency key, index it enters,
--       broker queue ('' for an idempotency key, index or queue it has none of)
-- ARGV: messages (JSON list of [id, idem_ttl, request_hash, status, score, history entry,
--       fields (flat list), record_ttl, position of its task in ARGV or 0]), op, at,
--       changes_maxlen, task messages...
-- -> flat {outcome, id, status, ...}, one triple per message as create.lua answers
-- Each message is created as create.lua does and, when it was created (by this run, not an
-- earlier run of the same op), its broker task is pushed on its queue.
-- uses: change.lua, create_record.lua
local changes = KEYS[1]
local messages, op, at, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local per_message = 5

local out = {}
for i, m in ipairs(cjson.decode(messages)) do
  local base = 1 + (i - 1) * per_message
  local record, queue = KEYS[base + 1], KEYS[base + 5]
  local replay = redis.call('HGET', record, 'create_op') == op
  local reply = create({record = record, events = KEYS[base + 2], idem = KEYS[base + 3],
                        target = KEYS[base + 4], changes = changes, id = m[1], ttl = m[2],
                        hash = m[3], status = m[4], score = m[5], entry = m[6], fields = m[7],
                        life = m[8], op = op, at = at, maxlen = maxlen})
  if reply[1] == 'created' and not replay and queue ~= '' then
    redis.call('LPUSH', queue, ARGV[m[9]])
  end
  out[#out + 1] = reply[1]
  out[#out + 1] = reply[2]
  out[#out + 1] = reply[3]
end
return out
