-- tests/docs/coverage.lua: every public name of the Lua API has an entry in
-- docs/reference, and every entry there names something that exists.
--
--   LUA_CPATH='build/lib/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--       luajit tests/docs/coverage.lua docs/reference
--
-- An entry is a Markdown heading (##, ### or ####) that starts with a code
-- span holding a qualified name, optionally followed by a signature:
--
--   ### `web.RequestHandler:get_argument(name, default?, strip?)`
--
-- The name is the span's text up to the first "(", space or "=". ":" and
-- "." are the same separator here, so `Class.fn` and `Class:fn` both match.
-- Names use the short module name a script binds with
-- `local web = require "gust.web"` (web, ioloop, ...; gust for "gust").
--
-- Public means: not starting with "_". What is walked:
--   * every field of each module table (functions, classes, constants);
--   * every field of each public class (methods and class constants), for a
--     subclass only the names its base class does not have, HTTP verb
--     methods excepted (they are overrides documented with the hook);
--   * classes that are only reached through an instance (the loop, a timer
--     handle, a socket, a stream, a listener, a shared dict, ...) are made
--     through the public API and their metatables walked.
--
-- Prints one line per module, "PASS gust.web" or "FAIL gust.web: ..." with
-- the exact names to add (or remove), and exits 1 when any module failed.

local docs_dir = arg[1] or "docs/reference"

local VERBS = { get = true, head = true, post = true, delete = true, patch = true,
                put = true, options = true }

------------------------------------------------------------------------------
-- The documented names.

local documented = {}   -- normalised name -> "file:line"
local entries = {}      -- list of { name = , where = } in file order

local function normalise(name)
  return (name:gsub(":", "."))
end

local function list_md(dir)
  local p = io.popen('ls "' .. dir .. '"/*.md 2>/dev/null')
  local out = {}
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  table.sort(out)
  return out
end

-- c-api.md (checked against gust.h by tests/docs/run.py) and cli.md are not
-- about Lua names.
local NOT_LUA = { ["c-api.md"] = true, ["cli.md"] = true }

for _, file in ipairs(list_md(docs_dir)) do
  if NOT_LUA[file:match("[^/]+$")] then goto continue end
  local n = 0
  local fence = false
  for line in io.lines(file) do
    n = n + 1
    if line:match("^%s*```") or line:match("^%s*~~~") then fence = not fence end
    if not fence then
      local span = line:match("^##+%s+`([^`]+)`")
      if span and #line:match("^(#+)") <= 4 then
        local name = span:match("^([^%(%s=]+)")
        if name then
          local key = normalise(name)
          local where = file .. ":" .. n
          if documented[key] then
            print("WARN duplicate entry " .. name .. " at " .. where .. " (first at "
                  .. documented[key] .. ")")
          else
            documented[key] = where
          end
          entries[#entries + 1] = { name = key, where = where }
        end
      end
    end
  end
  ::continue::
end

------------------------------------------------------------------------------
-- The public names.

local expected = {}   -- module -> list of normalised names
local owner = {}      -- normalised class/module prefix -> module it belongs to
local order = {}

local function want(mod, name)
  local list = expected[mod]
  if not list then
    list = {}
    expected[mod] = list
    order[#order + 1] = mod
  end
  list[#list + 1] = name
end

local function public(k)
  return type(k) == "string" and k:sub(1, 1) ~= "_"
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do if public(k) then keys[#keys + 1] = k end end
  table.sort(keys)
  return keys
end

-- A class: a table with an __index pointing at itself, a __name, or a
-- CamelCase name (a namespace of constructors such as HTTPHeaders).
local function is_class(v, k)
  return type(v) == "table" and (rawget(v, "__index") == v or rawget(v, "__name") ~= nil
                                 or (k ~= nil and k:match("^%u") ~= nil))
end

-- The base class of a class made with extend(), or of a metatable chain.
local function base_of(cls)
  local super = rawget(cls, "super")
  if super then return super end
  local mt = getmetatable(cls)
  if type(mt) == "table" and type(mt.__index) == "table" and mt.__index ~= cls then
    return mt.__index
  end
  return nil
end

-- Walks a class's own public members (for a subclass: the names its base
-- does not have, verbs excepted).
local function walk_class(mod, prefix, cls)
  owner[prefix] = mod
  local base = base_of(cls)
  for _, k in ipairs(sorted_keys(cls)) do
    local v = rawget(cls, k)
    if k ~= "super" and k ~= "new_class" then
      local inherited = base ~= nil and base[k] ~= nil
      if not inherited and not (base ~= nil and VERBS[k]) then
        want(mod, prefix .. "." .. k)
      end
      local _ = v
    end
  end
end

-- A methods table (an instance metatable's __index) of a userdata or table.
local function walk_methods(mod, prefix, methods)
  owner[prefix] = mod
  for _, k in ipairs(sorted_keys(methods)) do
    want(mod, prefix .. "." .. k)
  end
end

-- Every public field of a module table; classes are walked as well.
local function walk_module(modname, short, m)
  owner[short] = modname
  for _, k in ipairs(sorted_keys(m)) do
    local v = m[k]
    want(modname, short .. "." .. k)
    if is_class(v, k) then walk_class(modname, short .. "." .. k, v) end
  end
end

local MODULES = {
  { "gust", "gust" }, { "gust.web", "web" }, { "gust.websocket", "websocket" },
  { "gust.httpclient", "httpclient" }, { "gust.ioloop", "ioloop" },
  { "gust.iostream", "iostream" }, { "gust.tcpserver", "tcpserver" },
  { "gust.tcpclient", "tcpclient" }, { "gust.netutil", "netutil" },
  { "gust.locks", "locks" }, { "gust.queues", "queues" },
  { "gust.template", "template" }, { "gust.escape", "escape" },
  { "gust.httputil", "httputil" }, { "gust.wsapi", "wsapi" },
  { "gust.pubsub", "pubsub" }, { "gust.shared", "shared" }, { "gust.redis", "redis" },
  { "gust.testing", "testing" }, { "gust.log", "log" },
}

local problems = {} -- module -> list of messages (introspection failures)

local function problem(mod, msg)
  problems[mod] = problems[mod] or {}
  table.insert(problems[mod], msg)
end

-- Fields a module loads on first use: read them so the walk sees them.
local LAZY = { ["gust.web"] = { "ProxyHandler" } }

local loaded = {}
for _, spec in ipairs(MODULES) do
  local modname, short = spec[1], spec[2]
  local ok, m = pcall(require, modname)
  if not ok then
    problem(modname, "cannot require: " .. tostring(m))
    want(modname, short) -- keeps the module in the report
  else
    loaded[modname] = m
    for _, k in ipairs(LAZY[modname] or {}) do local _ = m[k] end
    if modname == "gust" then
      -- gust's own functions; its submodules (gust.web, ...) load lazily
      -- and are documented on their own pages.
      owner.gust = "gust"
      for _, k in ipairs(sorted_keys(m)) do
        if type(m[k]) ~= "table" then want("gust", "gust." .. k) end
      end
    else
      walk_module(modname, short, m)
    end
  end
end

-- Classes reached through an instance, made with the public API.
local function instance_classes()
  local web, ioloop = loaded["gust.web"], loaded["gust.ioloop"]
  local netutil, iostream = loaded["gust.netutil"], loaded["gust.iostream"]
  local function try(mod, prefix, make)
    local ok, err = pcall(function()
      local methods = make()
      if type(methods) ~= "table" then error("no methods table") end
      walk_methods(mod, prefix, methods)
    end)
    if not ok then problem(mod, "cannot introspect " .. prefix .. ": " .. tostring(err)) end
  end
  local function index_of(obj)
    local mt = getmetatable(obj)
    if type(mt) ~= "table" then error("no metatable") end
    local idx = rawget(mt, "__index")
    if type(idx) == "table" then return idx end
    return mt
  end
  if ioloop then
    try("gust.ioloop", "ioloop.IOLoop", function() return index_of(ioloop.current()) end)
    try("gust.ioloop", "ioloop.PeriodicCallback", function()
      return index_of(ioloop.PeriodicCallback(function() end, 1000))
    end)
    try("gust.ioloop", "ioloop.Timeout", function()
      local t = ioloop.current():call_later(3600, function() end)
      local idx = index_of(t)
      t:cancel()
      return idx
    end)
  end
  if netutil and iostream then
    local socks
    try("gust.netutil", "netutil.Socket", function()
      socks = assert(netutil.bind_sockets(0, "127.0.0.1"))
      return index_of(socks[1])
    end)
    try("gust.iostream", "iostream.IOStream", function()
      local sock = socks and socks[1] or assert(netutil.bind_sockets(0, "127.0.0.1"))[1]
      local s = iostream.IOStream(sock)
      local idx = index_of(s)
      s:close()
      return idx
    end)
  end
  if web then
    try("gust.web", "web.Listener", function()
      local l = web.Application({}):listen(0, "127.0.0.1")
      local idx = index_of(l)
      l:close()
      return idx
    end)
    -- The request's fields are built on first read: the builders and the
    -- methods are upvalues of its __index.
    try("gust.web", "web.HTTPServerRequest", function()
      local index = web.HTTPServerRequest.__index
      local names = { method = true, path = true, query = true }
      local i = 1
      while true do
        local name, value = debug.getupvalue(index, i)
        if not name then break end
        if (name == "BUILDERS" or name == "request_methods") and type(value) == "table" then
          for k in pairs(value) do names[k] = true end
        end
        i = i + 1
      end
      return names
    end)
  end
  local httputil = loaded["gust.httputil"]
  if httputil then
    try("gust.httputil", "httputil.HTTPHeaders", function()
      local h = httputil.HTTPHeaders.new()
      local index = getmetatable(h).__index
      if type(index) == "table" then return index end
      local i = 1
      while true do
        local name, value = debug.getupvalue(index, i)
        if not name then break end
        if name == "methods" then return value end
        i = i + 1
      end
      error("no methods upvalue")
    end)
  end
  local pubsub = loaded["gust.pubsub"]
  if pubsub then
    try("gust.pubsub", "pubsub.Subscription", function()
      local sub = pubsub.subscribe("docs.coverage", function() end)
      local idx = index_of(sub)
      sub:cancel()
      return idx
    end)
  end
  local shared = loaded["gust.shared"]
  if shared then
    try("gust.shared", "shared.Dict", function()
      return index_of(assert(shared.dict("docs_coverage", "8k")))
    end)
  end
end
instance_classes()

------------------------------------------------------------------------------
-- Compare.

local expected_set = {}
for _, mod in ipairs(order) do
  for _, name in ipairs(expected[mod]) do expected_set[name] = true end
end

-- Entries whose prefix is a walked class or module but whose member does
-- not exist: stale documentation.
local stale = {}
for _, e in ipairs(entries) do
  if not expected_set[e.name] then
    local prefix = e.name:match("^(.*)%.[^.]+$")
    local mod = prefix and owner[prefix]
    if mod == nil and owner[e.name] then mod = nil end -- a module/class heading
    if mod then
      stale[mod] = stale[mod] or {}
      table.insert(stale[mod], e.name .. " (" .. e.where .. ")")
    elseif not owner[e.name] and not (prefix and owner[prefix:match("^(.*)%.[^.]+$") or ""]) then
      print("WARN entry " .. e.name .. " at " .. e.where .. " names no known module or class")
    end
  end
end

local failed = 0
for _, mod in ipairs(order) do
  local missing = {}
  for _, name in ipairs(expected[mod]) do
    if not documented[name] then missing[#missing + 1] = name end
  end
  local msgs = {}
  if #missing > 0 then
    msgs[#msgs + 1] = "not documented in " .. docs_dir .. " (add a heading such as ### `"
      .. missing[1] .. "(...)`): " .. table.concat(missing, ", ")
  end
  if stale[mod] then
    msgs[#msgs + 1] = "documented but not in the code: " .. table.concat(stale[mod], ", ")
  end
  for _, p in ipairs(problems[mod] or {}) do msgs[#msgs + 1] = p end
  if #msgs > 0 then
    failed = failed + 1
    print("FAIL " .. mod .. ": " .. table.concat(msgs, "; "))
  else
    print("PASS " .. mod .. " (" .. #expected[mod] .. " names)")
  end
end

os.exit(failed == 0 and 0 or 1)
