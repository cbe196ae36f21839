-- gust.redis: a non-blocking Redis client for handlers and tasks (DESIGN
-- §4.9). Each connection is a gust stream on the worker's loop
-- (src/lua/lua_redis.c): a command yields the calling coroutine until its
-- reply comes, and nothing else waits.
--
--   local redis = require "gust.redis"
--   local r, err = redis.connect("redis://127.0.0.1:6379/0")
--   r:set("k", "v", "EX", 10)
--   local v = r:get("k")                 -- "v", or redis.null
--   r:close()                            -- back to the worker's pool
--
-- Every Redis command is a method named in lower case, made the first time
-- it is asked for (r:hgetall, r:xadd, ...): nothing is listed by hand.
-- Connections are pooled per worker and per address (host and port or
-- socket path, user, password, db): close() keeps up to redis.pool_size
-- idle ones, and connect() takes the newest idle one before dialling, so a
-- handler that connects and closes on every request reuses one socket.
local core = require "gust.core"

local error = error
local rawset = rawset
local select = select
local setmetatable = setmetatable
local tostring = tostring
local type = type
local pairs = pairs

local _M = { _VERSION = "0.1.0" }

-- The value of a nil reply (a missing key, a nil element of an array): the
-- NULL light userdata, equal to cjson.null.
_M.null = core.redis_null
-- Idle connections kept per address and worker.
_M.pool_size = 32

local pools = {} -- pool key -> array of idle gust.redis.conn

-- Commands after which a connection is not handed to the next user as it
-- is: a transaction or WATCH may be open, or the database or user changed.
local STATEFUL = { multi = true, watch = true, select = true, auth = true, hello = true }
-- Commands that end a transaction's state.
local RESETTING = { exec = true, discard = true, reset = true }

------------------------------------------------------------------------------
-- The client.

local Client = { __name = "gust.redis.Client" }
Client.__index = Client

local function command_method(name)
  if STATEFUL[name] then
    return function(self, ...)
      local c = self._conn
      if c == nil then return nil, "closed" end
      self._dirty = true
      return c:command(name, ...)
    end
  elseif RESETTING[name] then
    return function(self, ...)
      local c = self._conn
      if c == nil then return nil, "closed" end
      local res, err = c:command(name, ...)
      if res ~= nil then self._dirty = false end
      return res, err
    end
  end
  return function(self, ...)
    local c = self._conn
    if c == nil then return nil, "closed" end
    return c:command(name, ...)
  end
end

-- r:<command>(...): made on first use and kept, so the second call costs
-- no more than a method written by hand.
setmetatable(Client, {
  __index = function(cls, name)
    if type(name) ~= "string" or name:sub(1, 1) == "_" or name:find("%u") then return nil end
    local fn = command_method(name)
    rawset(cls, name, fn)
    return fn
  end,
})

function Client:__tostring()
  return "gust.redis.Client (" .. (self._conn and tostring(self._conn) or "closed") .. ")"
end

-- r:set_timeout(seconds): how long each reply may take (0: for ever).
function Client:set_timeout(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("bad argument #1 to 'set_timeout' (seconds >= 0 expected)", 2)
  end
  if self._conn then self._conn:set_timeout(seconds) end
end

-- The commands p:<command>(...) queue in a pipeline.
local Pipeline = { __name = "gust.redis.Pipeline" }
Pipeline.__index = function(p, name)
  if type(name) ~= "string" or name:sub(1, 1) == "_" then return nil end
  return function(self, ...)
    if self ~= p then
      error("pipeline commands are methods: p:" .. name .. "(...)", 2)
    end
    local cmds = p._cmds
    cmds[#cmds + 1] = { name, ... }
    local n = select("#", ...)
    for i = 1, n do
      local v = select(i, ...)
      local t = type(v)
      if t ~= "string" and t ~= "number" then
        error("bad argument #" .. i .. " to '" .. name .. "' (string or number expected, got "
              .. t .. ")", 2)
      end
    end
  end
end

-- r:pipeline(fn) -> {reply, ...} | nil, err: fn(p) queues commands on p
-- (p:set(k, v), p:get(k), ...); they go in one write and the replies come
-- back in order, an error reply as {false, "ERR ..."}.
function Client:pipeline(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'pipeline' (function expected, got " .. type(fn) .. ")", 2)
  end
  local c = self._conn
  if c == nil then return nil, "closed" end
  local p = setmetatable({ _cmds = {} }, Pipeline)
  fn(p)
  return c:pipeline(p._cmds)
end

-- Messages of a subscribed connection, to the function of their channel
-- or pattern; each runs as a task of its own.
local function dispatcher(self)
  return function(kind, a, b, c)
    if kind == "message" then
      local fn = self._subs[a]
      if fn then fn(b, a) end
    else -- pmessage: pattern, channel, message
      local fn = self._psubs[a]
      if fn then fn(c, b, a) end
    end
  end
end

local function subscribe(self, what, key, target, fn, fname)
  if type(target) ~= "string" then
    error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(target) .. ")", 3)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to '" .. fname .. "' (function expected, got " .. type(fn) .. ")", 3)
  end
  local c = self._conn
  if c == nil then return nil, "closed" end
  if not self._subs then
    self._subs, self._psubs = {}, {}
    c:set_push(dispatcher(self))
  end
  self._dirty = true
  self[key][target] = fn -- before the first message can come
  local res, err = c:command(what, target)
  if res == nil then
    self[key][target] = nil
    return nil, err
  end
  return true
end

-- r:subscribe(channel, fn) -> true | nil, err: fn(message, channel) runs as
-- a task for every message published on the channel. The connection then
-- serves subscriptions only, and close() closes it.
function Client:subscribe(channel, fn)
  return subscribe(self, "subscribe", "_subs", channel, fn, "subscribe")
end

-- r:psubscribe(pattern, fn) -> true | nil, err: fn(message, channel,
-- pattern) for every channel matching the glob-style pattern.
function Client:psubscribe(pattern, fn)
  return subscribe(self, "psubscribe", "_psubs", pattern, fn, "psubscribe")
end

local function unsubscribe(self, what, key, target)
  local c = self._conn
  if c == nil then return nil, "closed" end
  local subs = self[key]
  if not subs then return true end
  local targets = {}
  if target ~= nil then
    targets[1] = target
  else
    for t in pairs(subs) do targets[#targets + 1] = t end
  end
  for i = 1, #targets do
    subs[targets[i]] = nil
    local res, err = c:command(what, targets[i])
    if res == nil then return nil, err end
  end
  return true
end

-- r:unsubscribe(channel?) -> true | nil, err: one channel, or all.
function Client:unsubscribe(channel)
  return unsubscribe(self, "unsubscribe", "_subs", channel)
end

-- r:punsubscribe(pattern?) -> true | nil, err: one pattern, or all.
function Client:punsubscribe(pattern)
  return unsubscribe(self, "punsubscribe", "_psubs", pattern)
end

-- r:close() -> true: the connection goes back to the worker's pool when
-- it is fit to be reused (nothing waiting, no subscription, transaction or
-- changed database) and the pool has room, else it is closed. The client
-- answers nil, "closed" from then on.
function Client:close()
  local c = self._conn
  if c == nil then return true end
  self._conn = nil
  local pool = pools[self._key]
  if not self._dirty and c:idle() and #pool < _M.pool_size then
    pool[#pool + 1] = c
  else
    c:close()
  end
  return true
end

------------------------------------------------------------------------------
-- Connecting.

local OPTS = { host = "string", port = "number", path = "string", user = "string",
               password = "string", db = "number", connect_timeout = "number",
               timeout = "number", url = "string" }

local function options(url_or_opts, extra)
  local opts = {}
  if type(url_or_opts) == "string" then
    local u, err = core.redis_parse_url(url_or_opts)
    if not u then return nil, err end
    for k, v in pairs(u) do opts[k] = v end
  elseif type(url_or_opts) == "table" then
    if url_or_opts.url then
      local u, err = core.redis_parse_url(url_or_opts.url)
      if not u then return nil, err end
      for k, v in pairs(u) do opts[k] = v end
    end
    for k, v in pairs(url_or_opts) do opts[k] = v end
  elseif url_or_opts ~= nil then
    error("bad argument #1 to 'connect' (URL or options table expected, got "
          .. type(url_or_opts) .. ")", 3)
  end
  if type(extra) == "table" then
    for k, v in pairs(extra) do opts[k] = v end
  end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then error("connect: unknown option " .. tostring(k), 3) end
    if type(v) ~= want then
      error("connect: option " .. k .. ": " .. want .. " expected, got " .. type(v), 3)
    end
  end
  if not opts.path then
    opts.host = opts.host or "127.0.0.1"
    opts.port = opts.port or 6379
  end
  opts.db = opts.db or 0
  return opts
end

-- redis.connect(url_or_opts?, opts?) -> client | nil, err. A URL
-- (redis://[[user]:password@]host[:port][/db] or unix:///path) or options:
-- host (127.0.0.1), port (6379), path (a Unix socket instead), user,
-- password, db (0), connect_timeout (5 s), timeout (30 s per reply; 0 waits
-- for ever); a second table adds options to a URL. AUTH and SELECT are
-- sent on a new connection; a pooled one is handed out as it was left.
function _M.connect(url_or_opts, extra)
  local opts, err = options(url_or_opts, extra)
  if not opts then return nil, err end
  local key = (opts.path or (opts.host .. ":" .. opts.port)) .. "/" .. opts.db .. "\0"
    .. (opts.user or "") .. "\0" .. (opts.password or "")
  local pool = pools[key]
  if not pool then
    pool = {}
    pools[key] = pool
  end
  local timeout = opts.timeout or 30
  local client = setmetatable({ _key = key }, Client)
  while #pool > 0 do
    local c = pool[#pool]
    pool[#pool] = nil
    if c:idle() then
      c:set_timeout(timeout)
      client._conn = c
      return client
    end
  end
  local c
  if opts.path then
    c, err = core.redis_connect_unix(opts.path)
  else
    c, err = core.redis_connect(opts.host, opts.port, opts.connect_timeout or 5)
  end
  if not c then return nil, err end
  c:set_timeout(timeout)
  if opts.password then
    local res
    if opts.user then
      res, err = c:command("auth", opts.user, opts.password)
    else
      res, err = c:command("auth", opts.password)
    end
    if not res then
      c:close()
      return nil, err
    end
  end
  if opts.db ~= 0 then
    local res
    res, err = c:command("select", opts.db)
    if not res then
      c:close()
      return nil, err
    end
  end
  client._conn = c
  return client
end

-- Idle connections in every pool of this worker (tests).
function _M._pooled()
  local n = 0
  for _, pool in pairs(pools) do n = n + #pool end
  return n
end

_M.Client = Client

return _M
