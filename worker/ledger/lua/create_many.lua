-- KEYS: changes, then for each message: record, events, idempotency key, index it enters,
--       broker queue ('' for an idempotency key, index or queue it has none of), then
--       expiries
-- ARGV: messages (JSON list of [id, idem_ttl, request_hash, status, score, history entry,
--       fields (flat list), record_ttl, position of its task in ARGV or 0]), op, at,
--       changes_maxlen, mode ('' | 'whole' | 'check'), task messages...
-- -> flat {outcome, id, status, ...}, one triple per message as create.lua answers
-- Each message is created as create.lua does and, when it was created (by this run, not an
-- earlier run of the same op), its broker task is pushed on its queue. In mode 'whole' every
-- key is checked first: if any message's key was used for another request (before, or by an
-- earlier message of the batch), nothing is written and each message answers
-- {'conflict', first id, ''} or {'withheld', id, ''}. Mode 'check' answers that and writes
-- nothing, whatever it finds.
-- uses: change.lua, create_record.lua
local changes = KEYS[1]
local messages, op, at, maxlen, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local per_message = 5
local expiries = KEYS[#KEYS]
local batch = cjson.decode(messages)

-- The message that holds `m`'s key for another request (an earlier one, or one before it in
-- this batch), else nil. `seen` maps each key checked so far to {id, request_hash}.
local function holder(m, record, idem, seen)
  if idem == '' or redis.call('EXISTS', record) == 1 then return nil end
  if not seen[idem] then
    local existing = redis.call('GET', idem)
    if existing then
      local sep = string.find(existing, '|', 1, true)
      seen[idem] = {string.sub(existing, 1, sep - 1), string.sub(existing, sep + 1)}
    else
      seen[idem] = {m[1], m[3]}
    end
  end
  if seen[idem][2] ~= m[3] then return seen[idem][1] end
  return nil
end

if mode == 'whole' or mode == 'check' then
  local verdicts, refused, seen = {}, false, {}
  for i, m in ipairs(batch) do
    local base = 1 + (i - 1) * per_message
    local first = holder(m, KEYS[base + 1], KEYS[base + 3], seen)
    if first then
      refused = true
      verdicts[#verdicts + 1] = 'conflict'
      verdicts[#verdicts + 1] = first
    else
      verdicts[#verdicts + 1] = 'withheld'
      verdicts[#verdicts + 1] = m[1]
    end
    verdicts[#verdicts + 1] = ''
  end
  if refused or mode == 'check' then return verdicts end
end

local out = {}
for i, m in ipairs(batch) do
  local base = 1 + (i - 1) * per_message
  local record, queue = KEYS[base + 1], KEYS[base + 5]
  local replay = redis.call('HGET', record, 'create_op') == op
  local reply = create({record = record, events = KEYS[base + 2], idem = KEYS[base + 3],
                        target = KEYS[base + 4], changes = changes, expiries = expiries,
                        id = m[1], ttl = m[2],
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
