#!lua name=readreceipt_v1

-- The readreceipt engine's functions, loaded on every master. Each runs
-- atomically on the slot of one conversation: KEYS[1] is the
-- conversation's base key, <prefix>{<tag>}, and every key a function
-- touches is the base key plus a suffix (redis.go gives the layout); only
-- rr_privacy is given a user's key instead.
-- Engines call them through FCALL. Expiry is judged by the engine's clock,
-- which the engine passes in; only a creation's lease reads Redis's own
-- (TIME). Random numbers are the engine's too.

local CHUNK = 65536
local NOINDEX = 4294967295

local function lp(s) return #s .. ':' .. s end

-- The meta record of a message, as redis.go decodes it: nonce, end index,
-- sender index, recipients (4 bytes each), tracked-at seconds (8),
-- nanoseconds (4), incarnation (8), version (8), then the sender and, for
-- a message of a thread, a 0xff byte and the thread. IDs are UTF-8, where
-- 0xff never occurs, so the sender ends at the first one; a meta without
-- a thread is as it was before threads.
local function pack_meta(nonce, endi, sidx, recips, sec, nsec, inc, ver, sender, thread)
  local h = struct.pack('>I4I4I4I4I8I4I8I8', nonce, endi, sidx, recips, sec, nsec, inc, ver) .. sender
  if thread and thread ~= '' then h = h .. '\255' .. thread end
  return h
end

local function meta_end(h) return (struct.unpack('>I4', h, 5)) end
local function meta_inc(h) return (struct.unpack('>I8', h, 29)) end
-- meta_who returns the sender and the thread ('' for none).
local function meta_who(h)
  local rest = string.sub(h, 45)
  local i = string.find(rest, '\255', 1, true)
  if not i then return rest, '' end
  return string.sub(rest, 1, i - 1), string.sub(rest, i + 1)
end
local function meta_sender(h) return (meta_who(h)) end
local function meta_thread(h)
  local _, t = meta_who(h)
  return t
end
local function meta_time(h)
  local sec, nsec = struct.unpack('>I8I4', h, 17)
  return sec, nsec
end
-- meta_us is the message's position in its order: when it was tracked, in
-- Unix microseconds (exact in a double for present-day times).
local function meta_us(h)
  local sec, nsec = meta_time(h)
  return sec * 1000000 + math.floor(nsec / 1000)
end

-- bytes_le reports a <= b byte by byte, as Redis orders the members of a
-- sorted set of one score (Lua's own string order follows the locale).
local function bytes_le(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end

-- last_chunk returns the highest chunk that can hold an index below e, or
-- -1 when e is 0.
local function last_chunk(e)
  if e == 0 then return -1 end
  return math.floor((e - 1) / CHUNK)
end

local function msg_key(base, id) return base .. 'M' .. lp(id) end
local function readers_key(base, id, hi) return base .. 'R' .. lp(id) .. ':' .. hi end
local function sparse_key(base, id) return base .. 'S' .. lp(id) end
local function chunk_versions(base, hi) return base .. 'C' .. hi end
local function chunk_key(base, hi, ver) return base .. 'C' .. hi .. ':' .. ver end

-- The newest version of chunk hi written at or before ver, or nil.
local function chunk_in_force(base, hi, ver)
  local r = redis.call('ZREVRANGEBYSCORE', chunk_versions(base, hi), ver, '-inf', 'LIMIT', 0, 1)
  return r[1]
end

-- group_inc returns the incarnation of a usable group, or nil.
local function group_inc(base)
  local g = redis.call('HMGET', base .. 'G', 'i', 's')
  if not g[1] or g[2] then return nil end
  return g[1]
end

-- The group record; nil if there is no usable group (none, or being
-- created or dismissed).
local function group(base)
  local g = redis.call('HMGET', base .. 'G', 't', 'i', 'v', 'n', 'm', 's', 'lv', 'c')
  if not g[2] or g[6] then return nil end
  return {t = tonumber(g[1]), i = g[2], v = tonumber(g[3]), n = tonumber(g[4]), m = tonumber(g[5]), lv = tonumber(g[7] or '0'), c = g[8]}
end

-- expired(h, csec, cnsec): tracked at or before the cutoff.
local function expired(h, csec, cnsec)
  if csec < 0 then return false end
  local sec, nsec = meta_time(h)
  return sec < csec or (sec == csec and nsec <= cnsec)
end

-- Orders. A conversation's messages are in the sorted set O0: (the
-- order of thread ''), a thread's also in O<len>:<thread>, with score
-- meta_us and member the ID: members of one score sort by their bytes,
-- as the engine's positions do. Set OT names the threads that have an
-- order, so that a dismissal finds them. Message keys expire by TTL and
-- leave their entries behind, so the order sets get the retention as TTL
-- again on every tracking (a set outlives its newest message by nothing),
-- and dead entries are pruned: the two oldest of a set on every tracking,
-- and every one a scan walks over.
local function order_key(base, thread) return base .. 'O' .. lp(thread) end

-- entry_live returns the meta of the message an entry (id, score) of the
-- order of thread names, or nil when the entry is dead: its message gone
-- (deleted, expired by TTL), of another incarnation (inc, a number; nil
-- for C2C), tracked anew since (another score), of another thread, or
-- expired by the engine's clock (the cutoff).
local function entry_live(base, id, score, thread, inc, csec, cnsec)
  local h = redis.call('HGET', msg_key(base, id), 'h')
  if not h then return nil end
  if inc and meta_inc(h) ~= inc then return nil end
  if meta_us(h) ~= score then return nil end
  if thread ~= '' and meta_thread(h) ~= thread then return nil end
  if expired(h, csec, cnsec) then return nil end
  return h
end

-- order_remove removes ids from the order of thread, and the thread from
-- OT when its order is empty.
local function order_remove(base, thread, ids)
  if #ids == 0 then return end
  local k = order_key(base, thread)
  for i = 1, #ids, 500 do redis.call('ZREM', k, unpack(ids, i, math.min(i + 499, #ids))) end
  if thread ~= '' and redis.call('EXISTS', k) == 0 then redis.call('SREM', base .. 'OT', thread) end
end

-- order_add enters a message just tracked (meta h) in its orders.
local function order_add(base, id, h, retention, inc, csec, cnsec)
  local us = meta_us(h)
  local threads = {''}
  local t = meta_thread(h)
  if t ~= '' then threads[2] = t end
  for _, th in ipairs(threads) do
    local k = order_key(base, th)
    local r = redis.call('ZRANGE', k, 0, 1, 'WITHSCORES')
    local dead = {}
    for i = 1, #r, 2 do
      if not entry_live(base, r[i], tonumber(r[i + 1]), th, inc, csec, cnsec) then dead[#dead + 1] = r[i] end
    end
    order_remove(base, th, dead)
    redis.call('ZADD', k, us, id)
    if retention > 0 then redis.call('PEXPIRE', k, retention) end
  end
  if t ~= '' then
    redis.call('SADD', base .. 'OT', t)
    if retention > 0 then redis.call('PEXPIRE', base .. 'OT', retention) end
  end
end

-- The keys of the receipt model beyond R (see SETS below): D and P in
-- their sparse and dense forms, and the read-time log. delete_message
-- calls delete_model_keys.
local function log_key(base, id) return base .. 'L' .. lp(id) end

local function delete_model_keys(base, id, h)
  local last = last_chunk(meta_end(h))
  if meta_inc(h) == 0 then last = -1 end
  local ks = {log_key(base, id)}
  for _, k in ipairs({'D', 'P'}) do
    ks[#ks + 1] = base .. k .. lp(id)
    for hi = 0, last do ks[#ks + 1] = base .. k .. lp(id) .. ':' .. hi end
  end
  redis.call('UNLINK', unpack(ks))
end

local function delete_message(base, id, h)
  delete_model_keys(base, id, h)
  local last = last_chunk(meta_end(h))
  if meta_inc(h) == 0 then last = -1 end
  for hi = 0, last do redis.call('UNLINK', readers_key(base, id, hi)) end
  redis.call('UNLINK', msg_key(base, id), sparse_key(base, id))
  redis.call('SREM', base .. 'X', id)
  order_remove(base, '', {id})
  local t = meta_thread(h)
  if t ~= '' then order_remove(base, t, {id}) end
end

-- A group is created in slices: rr_create writes the record (hidden, state
-- 'c') and the first members, rr_create_more the next ones, rr_create_done
-- the membership chunks, and then the group is visible. Each step can be
-- sent again after a failure that left its outcome unknown (a lost reply,
-- a replica that did not acknowledge in time) and answers as the first
-- did. Field p is when the creation last moved (Redis's clock): a creation
-- that has not for lease seconds was cut short, and a new CreateGroup may
-- take its place.

local function clock()
  return tonumber(redis.call('TIME')[1])
end

-- create(base; type, inc, now, total, lease, users...)
redis.register_function('rr_create', function(keys, args)
  local base = keys[1]
  local gk = base .. 'G'
  local g = redis.call('HMGET', gk, 'i', 's', 'p', 'f')
  if g[1] then
    if g[1] == args[2] and g[2] == 'c' then return tonumber(g[4]) end
    if g[2] == 'd' then return redis.error_reply('DISMISSING') end
    if g[2] == 'c' then
      if clock() - tonumber(g[3] or '0') > tonumber(args[5]) then return redis.error_reply('STALE') end
      return redis.error_reply('BUSY')
    end
    return redis.error_reply('EXISTS')
  end
  local total = tonumber(args[4])
  local n = 0
  for i = 6, #args do
    redis.call('HSET', base .. 'U', args[i], n)
    redis.call('HSET', base .. 'I', n, args[i])
    n = n + 1
  end
  redis.call('HSET', gk, 't', args[1], 'i', args[2], 'v', 1, 'n', total, 'm', total, 'c', args[3], 'lv', 0, 'f', n, 's', 'c', 'p', clock())
  return n
end)

-- create_more(base; inc, start, users...): the slice of members from index
-- start on.
redis.register_function('rr_create_more', function(keys, args)
  local base = keys[1]
  local gk = base .. 'G'
  local g = redis.call('HMGET', gk, 'i', 's', 'f')
  if g[1] ~= args[1] or g[2] ~= 'c' then return redis.error_reply('NOGROUP') end
  local n, start = tonumber(g[3]), tonumber(args[2])
  if n == start + #args - 2 then return n end -- sent again: done already
  if n ~= start then return redis.error_reply('NOGROUP') end
  for i = 3, #args do
    redis.call('HSET', base .. 'U', args[i], n)
    redis.call('HSET', base .. 'I', n, args[i])
    n = n + 1
  end
  redis.call('HSET', gk, 'f', n, 'p', clock())
  return n
end)

-- create_done(base; inc): writes the first membership chunks of a group
-- whose members are 0..n-1 and makes it visible.
redis.register_function('rr_create_done', function(keys, args)
  local base = keys[1]
  local gk = base .. 'G'
  local g = redis.call('HMGET', gk, 'i', 'n', 'f', 's')
  if g[1] ~= args[1] then return redis.error_reply('NOGROUP') end
  local n = tonumber(g[2])
  if not g[4] then return n end -- sent again: done already
  if g[4] ~= 'c' then return redis.error_reply('NOGROUP') end
  if tonumber(g[3]) ~= n then return redis.error_reply('INCOMPLETE') end
  for hi = 0, last_chunk(n) do
    local cnt = math.min(CHUNK, n - hi * CHUNK)
    local bits = string.rep('\255', math.floor(cnt / 8))
    local rest = cnt % 8
    if rest > 0 then bits = bits .. string.char(256 - 2 ^ (8 - rest)) end
    redis.call('SET', chunk_key(base, hi, 1), bits)
    redis.call('ZADD', chunk_versions(base, hi), 1, 1)
  end
  redis.call('HDEL', gk, 'f', 's', 'p')
  return n
end)

-- members(base; add, retention ms, users...): adds (add = 1) or removes
-- members. A membership change writes the changed chunks under a new
-- version; a superseded chunk no message was tracked with is dropped, the
-- others expire with the retention (or stay, with retention 0).
redis.register_function('rr_members', function(keys, args)
  local base = keys[1]
  local gk = base .. 'G'
  local g = group(base)
  if not g then return redis.error_reply('NOGROUP') end
  local add = args[1] == '1'
  local retention = tonumber(args[2])
  local nv = g.v + 1
  local next = g.n
  local byhi, his = {}, {}
  for i = 3, #args do
    local u = args[i]
    local idx = redis.call('HGET', base .. 'U', u)
    if idx then
      idx = tonumber(idx)
    elseif add then
      if next >= NOINDEX then return redis.error_reply('FULL') end
      idx = next
      next = next + 1
      redis.call('HSET', base .. 'U', u, idx)
      redis.call('HSET', base .. 'I', idx, u)
    end
    if idx then
      local hi = math.floor(idx / CHUNK)
      if not byhi[hi] then byhi[hi] = {}; his[#his + 1] = hi end
      local l = byhi[hi]
      l[#l + 1] = idx - hi * CHUNK
    end
  end
  local delta = 0
  local bit = add and 1 or 0
  for _, hi in ipairs(his) do
    local w = chunk_in_force(base, hi, g.v)
    local src = w and chunk_key(base, hi, w)
    local dst = chunk_key(base, hi, nv)
    if src then redis.call('COPY', src, dst) end
    local d = 0
    for _, off in ipairs(byhi[hi]) do
      local old = redis.call('SETBIT', dst, off, bit)
      if add and old == 0 then d = d + 1 elseif not add and old == 1 then d = d - 1 end
    end
    if d == 0 then
      redis.call('DEL', dst)
    else
      delta = delta + d
      redis.call('ZADD', chunk_versions(base, hi), nv, nv)
      if src then
        if g.lv < tonumber(w) then
          redis.call('UNLINK', src)
          redis.call('ZREM', chunk_versions(base, hi), w)
        elseif retention > 0 then
          redis.call('PEXPIRE', src, retention)
        end
      end
    end
  end
  if delta ~= 0 then
    redis.call('HSET', gk, 'v', nv, 'm', g.m + delta, 'n', next)
  elseif next ~= g.n then
    redis.call('HSET', gk, 'n', next)
  end
  return delta
end)

-- dismiss(base; limit): deletes up to about limit keys of a group, hiding
-- it first; returns 1 when the group is gone, 0 when more remains.
redis.register_function('rr_dismiss', function(keys, args)
  local base = keys[1]
  local gk = base .. 'G'
  local g = redis.call('HMGET', gk, 'n', 's')
  if not g[1] then return redis.error_reply('NOGROUP') end
  local limit = tonumber(args[1])
  if g[2] ~= 'd' then redis.call('HSET', gk, 's', 'd') end
  local done = 0
  local ids = redis.call('SRANDMEMBER', base .. 'X', limit)
  for _, id in ipairs(ids) do
    local h = redis.call('HGET', msg_key(base, id), 'h')
    if h then delete_message(base, id, h) else redis.call('SREM', base .. 'X', id) end
    done = done + 1
  end
  if done >= limit then return 0 end
  -- The orders of its threads, then its own order and its marks.
  local threads = redis.call('SPOP', base .. 'OT', limit)
  for _, t in ipairs(threads) do redis.call('UNLINK', order_key(base, t)) end
  if #threads >= limit then return 0 end
  redis.call('UNLINK', order_key(base, ''), base .. 'OT', base .. 'K')
  for hi = 0, last_chunk(tonumber(g[1])) do
    local vk = chunk_versions(base, hi)
    for _, v in ipairs(redis.call('ZRANGE', vk, 0, -1)) do
      redis.call('UNLINK', chunk_key(base, hi, v))
    end
    redis.call('UNLINK', vk)
  end
  redis.call('UNLINK', base .. 'U', base .. 'I', base .. 'X', gk)
  return 1
end)

-- track(base; id, sender, sec, nsec, nonce, retention ms, group types
-- mask, cutoff sec, cutoff nsec, group, sparse threshold, sparse limit,
-- thread): registers a message, and enters it in its conversation's order
-- and its thread's (if any). A message
-- tracked before with the same sender answers {'SAME', meta}; with
-- another, {'OTHER', sender}; an expired one, or one of an earlier
-- incarnation of the group, is replaced.
redis.register_function('rr_track', function(keys, args)
  local base = keys[1]
  local id, sender = args[1], args[2]
  local sec, nsec, nonce = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  local retention = tonumber(args[6])
  local mask = tonumber(args[7])
  local csec, cnsec = tonumber(args[8]), tonumber(args[9])
  local isgroup = args[10] == '1'
  local thread = args[13] or ''
  local g
  if isgroup then
    g = group(base)
    if not g then return redis.error_reply('NOGROUP') end
    if bit.band(mask, bit.lshift(1, g.t)) == 0 then return {'TYPE', g.t} end
  end
  local mk = msg_key(base, id)
  local old = redis.call('HGET', mk, 'h')
  if old then
    local live = not expired(old, csec, cnsec) and (not isgroup or meta_inc(old) == tonumber(g.i))
    if live then
      if meta_sender(old) == sender then return {'SAME', old} end
      return {'OTHER', meta_sender(old)}
    end
    delete_message(base, id, old)
  end
  local h
  if isgroup then
    local sidx, recips = NOINDEX, g.m
    local idx = redis.call('HGET', base .. 'U', sender)
    if idx then
      idx = tonumber(idx)
      local hi = math.floor(idx / CHUNK)
      local w = chunk_in_force(base, hi, g.v)
      if w and redis.call('GETBIT', chunk_key(base, hi, w), idx - hi * CHUNK) == 1 then
        sidx, recips = idx, recips - 1
      end
    end
    h = pack_meta(nonce, g.n, sidx, recips, sec, nsec, tonumber(g.i), g.v, sender, thread)
    -- The message list keeps the IDs of messages that expired (Redis
    -- drops their keys, not their IDs here): each tracking drops those
    -- among two IDs drawn at random, which keeps the list within about
    -- twice the live messages.
    local xk = base .. 'X'
    for _, x in ipairs(redis.call('SRANDMEMBER', xk, 2)) do
      if redis.call('EXISTS', msg_key(base, x)) == 0 then redis.call('SREM', xk, x) end
    end
    redis.call('SADD', xk, id)
    if g.lv ~= g.v then redis.call('HSET', base .. 'G', 'lv', g.v) end
  else
    h = pack_meta(nonce, 0, NOINDEX, 1, sec, nsec, 0, 0, sender, thread)
  end
  redis.call('HSET', mk, 'h', h, 'n', 0)
  if isgroup and g.n > tonumber(args[11]) and tonumber(args[12]) > 0 then
    redis.call('HSET', mk, 'sp', args[12])
  end
  if retention > 0 then redis.call('PEXPIRE', mk, retention) end
  order_add(base, id, h, retention, isgroup and tonumber(g.i) or nil, csec, cnsec)
  return {'OK', h}
end)

-- Readers of a group message are kept in one of two forms. Dense: a
-- bitmap per chunk of 65,536 indexes (R keys), set with SETBIT. Sparse: a
-- set of indexes (S key, an intset of 4 bytes a reader), so that a message
-- of a huge group that few have read costs a few bytes a reader, not up to
-- 8 KiB a chunk. Tracking decides: a message whose member indexes reach
-- past the sparse threshold gets field sp, its sparse limit, and keeps its
-- readers sparse while its count is below sp; the call that takes the
-- count to sp turns it dense. So the form follows from the message's own
-- fields, whatever the options of the engine that calls.

local function set_ttl_like(key, mk)
  local ttl = redis.call('PTTL', mk)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end

-- INLINE is the most member indexes whose readers a message keeps in its
-- own hash (field r, a bitmap of up to 64 bytes) instead of a key of their
-- own: most groups are small, and a key costs far more than its bitmap.
local INLINE = 512

-- set_bit sets bit idx of bitmap string r (Redis's bit order: bit 0 is the
-- high bit of byte 0) and returns the new string and the old bit.
local function set_bit(r, idx)
  local byte = math.floor(idx / 8) + 1
  local mask = 2 ^ (7 - idx % 8)
  if #r < byte then r = r .. string.rep('\0', byte - #r) end
  local b = string.byte(r, byte)
  if bit.band(b, mask) ~= 0 then return r, 1 end
  return string.sub(r, 1, byte - 1) .. string.char(bit.bor(b, mask)) .. string.sub(r, byte + 1), 0
end

-- The sets of member indexes a message keeps: R, its readers; D, the
-- recipients a delivery was recorded for without a public read (delivery
-- receipts and private reads); P, its private readers. Each has a count
-- in the message's hash (n for R, dc for D, pc for P) and the forms R has
-- (above): sparse (a set key) while the message has sp and the count is
-- below it, else inline (a hash field) when the message's indexes stay
-- within INLINE, else dense (a bitmap key per chunk). Field dn counts D
-- minus R. A message nobody reported delivered has none of D's keys or
-- fields, and its read path only reads dn with the fields it read before.
-- A C2C message keeps R as its count n (and read time t), and D and P
-- inline at index 0.
local SETS = {
  R = {cnt = 'n', inl = 'r', sk = 'S', dk = 'R'},
  D = {cnt = 'dc', inl = 'd', sk = 'D', dk = 'D'},
  P = {cnt = 'pc', inl = 'p', sk = 'P', dk = 'P'},
}

local function dense_key(base, s, id, hi) return base .. s.dk .. lp(id) .. ':' .. hi end
local function set_key(base, s, id) return base .. s.sk .. lp(id) end

-- The message's fields: every one, and those a public read needs.
local MSG_FIELDS = {'h', 'n', 'sp', 'r', 'dn', 'dc', 'd', 'pc', 'p', 't'}
local READ_FIELDS = {'h', 'n', 'sp', 'r', 'dn'}
local NUMERIC = {n = true, sp = true, dn = true, dc = true, pc = true}

-- read_msg reads fields of a message's hash; counts read as numbers.
local function read_msg(mk, fields)
  local v = redis.call('HMGET', mk, unpack(fields))
  local m = {}
  for i, f in ipairs(fields) do
    if NUMERIC[f] then m[f] = tonumber(v[i] or '0') elseif v[i] then m[f] = v[i] end
  end
  return m
end

local function form(m, e, s)
  if m.sp > 0 and m[s.cnt] < m.sp then return 'sparse' end
  if e <= INLINE then return 'inline' end
  return 'dense'
end

local function bit_of(r, idx)
  local byte = math.floor(idx / 8) + 1
  if not r or #r < byte then return false end
  return bit.band(string.byte(r, byte), 2 ^ (7 - idx % 8)) ~= 0
end

-- set_has reports whether idx is in set s of message m (end index e).
local function set_has(base, id, m, e, s, idx)
  if m[s.cnt] == 0 then return false end
  local f = form(m, e, s)
  if f == 'sparse' then return redis.call('SISMEMBER', set_key(base, s, id), idx) == 1 end
  if f == 'inline' then return bit_of(m[s.inl], idx) end
  local hi = math.floor(idx / CHUNK)
  return redis.call('GETBIT', dense_key(base, s, id, hi), idx - hi * CHUNK) == 1
end

-- set_dense sets idx in its chunk of set s and reports whether it is new;
-- fresh tells whether the chunk's key is new, nil when not known.
local function set_dense(base, s, id, mk, idx, fresh)
  local hi = math.floor(idx / CHUNK)
  local k = dense_key(base, s, id, hi)
  if fresh == nil then fresh = redis.call('EXISTS', k) == 0 end
  local old = redis.call('SETBIT', k, idx - hi * CHUNK, 1)
  if fresh then set_ttl_like(k, mk) end
  return old == 0
end

-- set_add adds idx to set s of message m (key mk, end index e), counts it,
-- and reports whether it is new. The call that takes a sparse set's count
-- to sp turns it inline or dense.
local function set_add(base, id, mk, m, e, s, idx)
  local c = m[s.cnt]
  local f = form(m, e, s)
  local new
  if f == 'sparse' then
    local sk = set_key(base, s, id)
    new = redis.call('SADD', sk, idx) == 1
    if new and c == 0 then set_ttl_like(sk, mk) end
    if new and c + 1 == m.sp then
      local xs = redis.call('SMEMBERS', sk)
      if e <= INLINE then
        local r = ''
        for _, x in ipairs(xs) do r = set_bit(r, tonumber(x)) end
        redis.call('HSET', mk, s.inl, r)
        m[s.inl] = r
      else
        for _, x in ipairs(xs) do set_dense(base, s, id, mk, tonumber(x)) end
      end
      redis.call('UNLINK', sk)
    end
  elseif f == 'inline' then
    local r, old = set_bit(m[s.inl] or '', idx)
    new = old == 0
    if new then
      redis.call('HSET', mk, s.inl, r)
      m[s.inl] = r
    end
  else
    -- Within one chunk, its key is new exactly when the set is empty.
    local fresh = nil
    if e <= CHUNK then fresh = c == 0 end
    new = set_dense(base, s, id, mk, idx, fresh)
  end
  if new then m[s.cnt] = redis.call('HINCRBY', mk, s.cnt, 1) end
  return new
end

-- append_log appends a read-time entry ('' for none) to the message's log.
local function append_log(base, id, mk, entry)
  if entry == '' then return end
  local k = log_key(base, id)
  if redis.call('APPEND', k, entry) == #entry then set_ttl_like(k, mk) end
end

-- receipt(base; group, inc, reader index, now ns, mode, then per message:
-- id, nonce, log entry): records one reader's receipts of mode (0 read,
-- 1 private read, 2 delivery; model.go says what each sets). Per message,
-- three numbers: the outcome (1 a new public read, 2 a new delivery,
-- private or not, 3 a new private read of a reader delivered already, 0
-- nothing new, -1 the message is gone or is not the one the engine
-- admitted: a newer tracking, another incarnation), then n and dn
-- afterwards. A new public or private read appends its log entry.
redis.register_function('rr_receipt', function(keys, args)
  local base = keys[1]
  local isgroup = args[1] == '1'
  local mode = args[5]
  local out = {}
  local function put(a, b, c)
    out[#out + 1] = a; out[#out + 1] = b; out[#out + 1] = c
  end
  if isgroup and group_inc(base) ~= args[2] then
    for i = 6, #args, 3 do put(-1, 0, 0) end
    return out
  end
  local idx = tonumber(args[3])
  local R, D, P = SETS.R, SETS.D, SETS.P
  for i = 6, #args, 3 do
    local id, nonce, entry = args[i], args[i + 1], args[i + 2]
    local mk = msg_key(base, id)
    local m = read_msg(mk, mode == '0' and READ_FIELDS or MSG_FIELDS)
    local h = m.h
    if not h or string.sub(h, 1, 4) ~= nonce then
      put(-1, 0, 0)
    else
      local e = meta_end(h)
      local status = 0
      if mode == '0' then
        local new = false
        if isgroup then
          new = set_add(base, id, mk, m, e, R, idx)
        elseif m.n == 0 then
          redis.call('HSET', mk, 'n', 1, 't', args[4])
          m.n, new = 1, true
        end
        if new then
          status = 1
          if m.dn > 0 then
            -- Only a message with deliveries of readers not in R reads D.
            local x = redis.call('HMGET', mk, 'dc', 'd')
            m.dc, m.d = tonumber(x[1] or '0'), x[2] or nil
            if set_has(base, id, m, e, D, idx) then m.dn = redis.call('HINCRBY', mk, 'dn', -1) end
          end
          append_log(base, id, mk, entry)
        end
      else
        local inR
        if isgroup then inR = set_has(base, id, m, e, R, idx) else inR = m.n > 0 end
        if not inR then
          if mode == '1' then
            if set_add(base, id, mk, m, e, P, idx) then
              status = 3
              append_log(base, id, mk, entry)
              if set_add(base, id, mk, m, e, D, idx) then
                status = 2
                m.dn = redis.call('HINCRBY', mk, 'dn', 1)
              end
            end
          elseif set_add(base, id, mk, m, e, D, idx) then
            status = 2
            m.dn = redis.call('HINCRBY', mk, 'dn', 1)
          end
        end
      end
      put(status, m.n, m.dn)
    end
  end
  return out
end)

-- chunk_members returns the members of set s of message m in chunk c: a
-- bitmap (bit i is index c*65536+i), an array of indexes (sparse form), or
-- false when there are none.
local function chunk_members(base, id, m, e, s, c)
  if m[s.cnt] == 0 then return false end
  local f = form(m, e, s)
  if f == 'sparse' then
    local key = 'all' .. s.sk
    if not m[key] then m[key] = redis.call('SMEMBERS', set_key(base, s, id)) end
    local out = {}
    for _, x in ipairs(m[key]) do
      local v = tonumber(x)
      if math.floor(v / CHUNK) == c then out[#out + 1] = v end
    end
    if #out == 0 then return false end
    return out
  end
  if f == 'inline' then
    if c == 0 and m[s.inl] then return m[s.inl] end
    return false
  end
  return redis.call('GET', dense_key(base, s, id, c)) or false
end

-- readers(base; inc, id, nonce, hi, last, sets): for a page of a group
-- message, the first chunk c from hi to last where any of sets ('R' or
-- 'RD') has members: {c, then each set's members in chunk c (see
-- chunk_members)}; {-1} when there is none; an error reply GONE when the
-- message is not the one given.
redis.register_function('rr_readers', function(keys, args)
  local base = keys[1]
  if group_inc(base) ~= args[1] then return redis.error_reply('GONE') end
  local id = args[2]
  local m = read_msg(msg_key(base, id), MSG_FIELDS)
  if not m.h or string.sub(m.h, 1, 4) ~= args[3] then return redis.error_reply('GONE') end
  local e = meta_end(m.h)
  local sets = {}
  for k = 1, #args[6] do sets[k] = SETS[string.sub(args[6], k, k)] end
  for c = tonumber(args[4]), tonumber(args[5]) do
    local out, some = {c}, false
    for k, s in ipairs(sets) do
      out[k + 1] = chunk_members(base, id, m, e, s, c)
      if out[k + 1] then some = true end
    end
    if some then return out end
  end
  return {-1}
end)

-- state(base; group, user, log, then message IDs): one user's state of
-- messages, for GetMessageReadState: {the group's incarnation ('0' when
-- none, or C2C), the user's member index (-1 when none), then per
-- message: its meta (false when none), whether the user is in R, P and D
-- (1 or 0 each), its C2C read time (false when none) and, when log is 1
-- and the user is in R or P, its read-time log (false when none)}. A C2C
-- message's R, P and D are its recipient's.
redis.register_function('rr_state', function(keys, args)
  local base = keys[1]
  local isgroup = args[1] == '1'
  local inc, idx = '0', -1
  if isgroup then
    inc = group_inc(base) or '0'
    local x = redis.call('HGET', base .. 'U', args[2])
    if x then idx = tonumber(x) end
  else
    idx = 0
  end
  local out = {inc, idx}
  for i = 4, #args do
    local id = args[i]
    local mk = msg_key(base, id)
    local m = read_msg(mk, MSG_FIELDS)
    local r, p, d = false, false, false
    if m.h and idx >= 0 then
      local e = meta_end(m.h)
      if isgroup then r = set_has(base, id, m, e, SETS.R, idx) else r = m.n > 0 end
      p = set_has(base, id, m, e, SETS.P, idx)
      d = set_has(base, id, m, e, SETS.D, idx)
    end
    local log = false
    if args[3] == '1' and (r or p) then log = redis.call('GET', log_key(base, id)) end
    out[#out + 1] = m.h or false
    out[#out + 1] = r and 1 or 0
    out[#out + 1] = p and 1 or 0
    out[#out + 1] = d and 1 or 0
    out[#out + 1] = m.t or false
    out[#out + 1] = log
  end
  return out
end)

-- times(base; group, id, log, users...): who of users read a message
-- publicly, for GetMessageReadTimes: {the group's incarnation ('0' when
-- none, or C2C), its meta (false when none), n, its C2C read time (false
-- when none), its read-time log (when log is 1; false when none), then per
-- user its member index when in R, else -1}. For a C2C message, R is its
-- count, and each user's index 0 when it is read.
redis.register_function('rr_times', function(keys, args)
  local base = keys[1]
  local isgroup = args[1] == '1'
  local id = args[2]
  local inc = '0'
  if isgroup then inc = group_inc(base) or '0' end
  local mk = msg_key(base, id)
  local m = read_msg(mk, MSG_FIELDS)
  if not m.h then return {inc, false, 0, false, false} end
  local log = false
  if args[3] == '1' and m.n > 0 then log = redis.call('GET', log_key(base, id)) end
  local out = {inc, m.h, m.n, m.t or false, log}
  local e = meta_end(m.h)
  for i = 4, #args do
    local r = -1
    if not isgroup then
      if m.n > 0 then r = 0 end
    elseif m.n > 0 then
      local x = redis.call('HGET', base .. 'U', args[i])
      if x and set_has(base, id, m, e, SETS.R, tonumber(x)) then r = tonumber(x) end
    end
    out[#out + 1] = r
  end
  return out
end)

-- chunk(base; inc, hi, version): chunk hi of the group's membership at
-- version ('' when empty), or an error reply GONE for another incarnation.
redis.register_function('rr_chunk', function(keys, args)
  local base = keys[1]
  local gi = redis.call('HGET', base .. 'G', 'i')
  if gi ~= args[1] then return redis.error_reply('GONE') end
  local w = chunk_in_force(base, tonumber(args[2]), tonumber(args[3]))
  if not w then return '' end
  return redis.call('GET', chunk_key(base, tonumber(args[2]), w)) or ''
end)

-- delete(base; id): deletes a message's state; 1 if there was any.
redis.register_function('rr_delete', function(keys, args)
  local base = keys[1]
  local h = redis.call('HGET', msg_key(base, args[1]), 'h')
  if not h then
    -- Expired by TTL: its entries are dead; drop the one known here.
    order_remove(base, '', {args[1]})
    return 0
  end
  delete_message(base, args[1], h)
  return 1
end)

-- scan(base; thread, after µs ('-inf': from the start), after id, up-to
-- µs, up-to id, limit, budget, group, cutoff sec, cutoff nsec): the live
-- messages of the order of thread with positions after (after µs, after
-- id) and at or before (up-to µs, up-to id), in order, at most limit of
-- them, walking at most budget entries past after. An ID of 0xff (the
-- engine's maxID) stands for a time: after every message of that
-- microsecond. Dead entries walked over are pruned. Returns {more, group
-- incarnation (0 for C2C), last µs, last id, then id, µs, meta per live
-- message}, where more is 1 when the walk stopped at its budget: the
-- caller goes on after (last µs, last id).
redis.register_function('rr_scan', function(keys, args)
  local base = keys[1]
  local thread = args[1]
  local k = order_key(base, thread)
  local limit, budget = tonumber(args[6]), tonumber(args[7])
  local csec, cnsec = tonumber(args[9]), tonumber(args[10])
  local inc = nil
  if args[8] == '1' then
    local gi = group_inc(base)
    if not gi then return {0, 0, 0, ''} end
    inc = tonumber(gi)
  end
  local aus, aid = nil, args[3]
  local start, skip = 0, false
  if args[2] ~= '-inf' then
    aus = tonumber(args[2])
    if aid == '\255' then
      start = redis.call('ZCOUNT', k, '-inf', args[2])
    else
      local r = redis.call('ZRANK', k, aid)
      if r and tonumber(redis.call('ZSCORE', k, aid)) == aus then
        start = r + 1
      else
        -- The message at after is gone: skip the entries of its
        -- microsecond up to its ID.
        start = redis.call('ZCOUNT', k, '-inf', '(' .. args[2])
        skip = true
      end
    end
  end
  local uus, uid = tonumber(args[4]), args[5]
  local out = {0, inc or 0, 0, ''}
  local n, walked = 0, 0
  local dead = {}
  local rank = start
  local done = false
  while not done do
    local batch = redis.call('ZRANGE', k, rank, rank + 99, 'WITHSCORES')
    if #batch == 0 then break end
    rank = rank + 100
    for i = 1, #batch, 2 do
      local id, us = batch[i], tonumber(batch[i + 1])
      if us > uus or (us == uus and not bytes_le(id, uid)) then
        done = true
        break
      end
      if not (skip and us == aus and bytes_le(id, aid)) then
        walked = walked + 1
        out[3], out[4] = us, id
        local h = entry_live(base, id, us, thread, inc, csec, cnsec)
        if h then
          n = n + 1
          out[#out + 1] = id
          out[#out + 1] = us
          out[#out + 1] = h
        else
          dead[#dead + 1] = id
        end
        if n >= limit then
          done = true
          break
        end
        if walked >= budget then
          out[1] = 1
          done = true
          break
        end
      end
    end
  end
  order_remove(base, thread, dead)
  return out
end)

-- mark(base; field, position, group): raises a reader's mark (hash K,
-- field <len>:<thread><reader>, the position encoded to sort as positions
-- do) to position, never lowering it, and returns the mark afterwards.
-- A group that is gone has no marks: NOGROUP.
redis.register_function('rr_mark', function(keys, args)
  local base = keys[1]
  if args[3] == '1' and not group_inc(base) then return redis.error_reply('NOGROUP') end
  local old = redis.call('HGET', base .. 'K', args[1])
  if old and bytes_le(args[2], old) then return old end
  redis.call('HSET', base .. 'K', args[1], args[2])
  return args[2]
end)

-- privacy(key; on): sets (on = 1) or clears a user's private receipts.
-- KEYS[1] is the user's key, <prefix>p{u<len>:<user>}, outside every
-- conversation's slot.
redis.register_function('rr_privacy', function(keys, args)
  if args[1] == '1' then
    redis.call('SET', keys[1], '1')
  else
    redis.call('DEL', keys[1])
  end
  return 1
end)
