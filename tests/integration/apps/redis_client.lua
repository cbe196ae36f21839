-- gust.redis from handlers, against the Redis at $REDIS_URL. Each route
-- answers with what the client saw, replies written out with their Lua
-- types ("string:v", "number:1", "null", "table:[...]", "error:ERR ...").
local gust = require "gust"
local web = require "gust.web"
local redis = require "gust.redis"
local locks = require "gust.locks"

local URL = os.getenv("REDIS_URL")

local function show(v, err)
  if v == nil then return "error:" .. tostring(err) end
  if v == redis.null then return "null" end
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = show(v[i]) end
    if v[1] == false then return "error:" .. tostring(v[2]) end
    return "table:[" .. table.concat(parts, ",") .. "]"
  end
  return type(v) .. ":" .. tostring(v)
end

local function connect(h)
  local r, err = redis.connect(h:get_argument("url", URL))
  if not r then
    h:write("error:" .. tostring(err))
    return nil
  end
  return r
end

local Types = web.RequestHandler:extend()
function Types:get()
  local r = connect(self)
  if not r then return end
  r:del("t:s", "t:l", "t:h", "t:n")
  local out = {
    set = show(r:set("t:s", "v", "EX", 100)),
    get = show(r:get("t:s")),
    missing = show(r:get("t:none")),
    incr = show(r:incr("t:n")),
    incrby = show(r:incrby("t:n", 41)),
    rpush = show(r:rpush("t:l", "a", 2, "")),
    lrange = show(r:lrange("t:l", 0, -1)),
    hset = show(r:hset("t:h", "f", "x")),
    hmget = show(r:hmget("t:h", "f", "nope")),
    error = show(r:hget("t:s", "f")),
    unknown = show(r:nosuchcommand("x")),
    status = show(r:ping()),
    binary = show(r:set("t:b", "a\0b\r\nc")) .. "," .. show(r:strlen("t:b")),
    exec = show(r:pipeline(function(p) p:multi() p:incr("t:n") p:hget("t:s", "f") p:exec() end)),
  }
  r:close()
  self:write(out)
end

local Pipeline = web.RequestHandler:extend()
function Pipeline:get()
  local r = connect(self)
  if not r then return end
  local n = tonumber(self:get_argument("n"))
  r:del("p:n")
  local res, err = r:pipeline(function(p)
    for i = 1, n do
      if i % 2 == 1 then p:incr("p:n") else p:get("p:n") end
    end
  end)
  r:close()
  if not res then return self:write("error:" .. err) end
  local ok = #res == n
  for i = 1, n do
    local want = i % 2 == 1 and (i + 1) / 2 or tostring(i / 2)
    if res[i] ~= want then ok = false end
  end
  self:write(ok and ("ok " .. #res) or ("bad " .. #res))
end

local Get = web.RequestHandler:extend()
function Get:get()
  local r = connect(self)
  if not r then return end
  r:set_timeout(tonumber(self:get_argument("timeout", "5")))
  local t0 = gust.now()
  local v, err = r:get(self:get_argument("key", "k"))
  local after = show(r:ping())
  r:close()
  self:write({ got = show(v, err), elapsed = gust.now() - t0, after = after })
end

local ClientId = web.RequestHandler:extend()
function ClientId:get()
  local r = connect(self)
  if not r then return end
  local id, err = r:client("id")
  r:close()
  self:write(id and tostring(id) or show(id, err))
end

local Incr = web.RequestHandler:extend()
function Incr:get()
  local r = connect(self)
  if not r then return end
  local n, err = r:incr("c:count")
  gust.sleep(0.05) -- hold the connection while the others come
  r:close()
  self:write(show(n, err))
end

local Pooled = web.RequestHandler:extend()
function Pooled:get() self:write(tostring(redis._pooled())) end

local Subscribe = web.RequestHandler:extend()
function Subscribe:get()
  local r = connect(self)
  if not r then return end
  local got, done = {}, locks.Event()
  local ok, err = r:subscribe(self:get_argument("ch"), function(message, channel)
    got[#got + 1] = channel .. "=" .. message
  end)
  if not ok then return self:write("error:" .. err) end
  -- Redis sends a message to the channel's subscribers before the
  -- patterns', and each runs as a task in that order: once a pattern's
  -- copy is here, so is the channel's.
  local pok, perr = r:psubscribe(self:get_argument("ch") .. "*", function(message, channel, pattern)
    got[#got + 1] = pattern .. ">" .. channel .. "=" .. message
    done:set()
  end)
  if not pok then return self:write("error:" .. perr) end
  done:wait(10)
  local get_in_sub = show(r:get("x"))
  r:unsubscribe()
  r:punsubscribe()
  r:close()
  self:write({ got = got, get_in_sub = get_in_sub, after_close = show(r:get("x")) })
end

local Broken = web.RequestHandler:extend()
function Broken:get()
  local r, killer = connect(self), connect(self)
  if not r or not killer then return end
  local id = r:client("id")
  local killed = show(killer:client("kill", "id", id))
  killer:close()
  self:write({ killed = killed, after = show(r:get("x")) })
  r:close()
end

local Ping = web.RequestHandler:extend()
function Ping:get() self:write("pong") end

local Misuse = web.RequestHandler:extend()
function Misuse:get()
  local r = connect(self)
  if not r then return end
  local ok, err = pcall(r.set, r, "k", {})
  local ok2, err2 = pcall(r.pipeline, r, function(p) p:set("k", nil) end)
  r:close()
  self:write({ table_arg = tostring(ok) .. " " .. tostring(err),
               nil_arg = tostring(ok2) .. " " .. tostring(err2) })
end

return web.Application({
  {"/types", Types}, {"/pipeline", Pipeline}, {"/get", Get}, {"/clientid", ClientId},
  {"/incr", Incr}, {"/pooled", Pooled}, {"/subscribe", Subscribe}, {"/broken", Broken},
  {"/ping", Ping}, {"/misuse", Misuse},
})
