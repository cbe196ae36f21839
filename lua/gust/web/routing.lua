-- gust.web.routing: the route table of an Application. A route's pattern
-- is a Lua pattern matched against the whole path: it is analysed once,
-- when added (anchors, the number of captures, whether it is a plain
-- string compared with ==, a template for reverse_url), so that find()
-- does no more than one find/match per pattern route it tries.

local _M = { _VERSION = "0.1.0" }

local type, tostring, select, error, pcall, pairs = type, tostring, select, error, pcall, pairs
local setmetatable = setmetatable
local find, format, gsub, match, sub = string.find, string.format, string.gsub,
  string.match, string.sub
local concat = table.concat
local huge = math.huge
local unpack = unpack or table.unpack -- luacheck: ignore 143

local escape = require "gust.escape"
local log = require "gust.log"

local url_escape, url_unescape = escape.url_escape, escape.url_unescape

-- Passed to initialize() when a route has no kwargs: shared, so writes to
-- it are refused rather than leaking into the next request.
local EMPTY = setmetatable({}, {
  __newindex = function() error("route kwargs are read-only", 2) end,
})
_M.EMPTY = EMPTY


local MAGIC = "^$()%.[]*+-?"
local MAGIC_SET = {}
for i = 1, #MAGIC do MAGIC_SET[sub(MAGIC, i, i)] = true end

-- Index just past the "[...]" set that starts at i.
local function skip_set(p, i)
  local j = i + 1
  if sub(p, j, j) == "^" then j = j + 1 end
  if sub(p, j, j) == "]" then j = j + 1 end
  while j <= #p do
    local c = sub(p, j, j)
    if c == "%" then
      j = j + 2
    elseif c == "]" then
      return j + 1
    else
      j = j + 1
    end
  end
  error("malformed pattern (missing ']')", 0)
end

-- pattern (unanchored body) -> { ncaps, literal (string|nil), parts (array
-- of strings and capture numbers, nil when not reversible), nargs }.
local function analyse(body)
  local ncaps, depth, nargs = 0, 0, 0
  local literal, reversible, dash = true, true, false
  local plain_alnum = false -- the last item was a plain letter or digit
  local parts, lit = {}, {}
  local i, n = 1, #body
  while i <= n do
    local c = sub(body, i, i)
    if c == "%" then
      local d = sub(body, i + 1, i + 1)
      if d == "" then error("malformed pattern (ends with '%')", 0) end
      if find(d, "%w") then
        -- a class (%d), a back reference (%1), %b or %f
        literal = false
        if depth == 0 then reversible = false end
        if d == "b" then
          i = i + 4
        elseif d == "f" then
          if sub(body, i + 2, i + 2) ~= "[" then error("missing '[' after '%f' in pattern", 0) end
          i = skip_set(body, i + 2)
        else
          i = i + 2
        end
      else
        if depth == 0 then lit[#lit + 1] = d end
        i = i + 2
      end
    elseif c == "[" then
      literal = false
      if depth == 0 then reversible = false end
      i = skip_set(body, i)
    elseif c == "(" then
      literal = false
      ncaps = ncaps + 1
      if depth == 0 then
        nargs = nargs + 1
        if #lit > 0 then parts[#parts + 1] = concat(lit); lit = {} end
        parts[#parts + 1] = nargs
      else
        reversible = false -- nested captures cannot be filled in
      end
      depth = depth + 1
      i = i + 1
    elseif c == ")" then
      if depth == 0 then error("invalid pattern capture", 0) end
      depth = depth - 1
      i = i + 1
    elseif MAGIC_SET[c] then
      -- "a-b": almost always meant as a dash, but '-' is a quantifier.
      if c == "-" and plain_alnum and find(sub(body, i + 1, i + 1), "^%w") then dash = true end
      literal = false
      if depth == 0 then reversible = false end
      i = i + 1
    else
      if depth == 0 then lit[#lit + 1] = c end
      i = i + 1
    end
    plain_alnum = c ~= "%" and find(c, "^%w") ~= nil
  end
  -- find("", regex) stops at the first mismatch, before Lua sees these.
  if depth ~= 0 then error("unfinished capture", 0) end
  if #lit > 0 then parts[#parts + 1] = concat(lit) end
  local info = { ncaps = ncaps, nargs = nargs, dash = dash }
  if literal then info.literal = concat(parts) end
  if reversible then info.parts = parts end
  return info
end

-- The literal a pattern piece stands for ("%." -> "."), or nil when it has
-- anything magic.
local function literal_of(piece)
  local ok, info = pcall(analyse, piece)
  if ok and info.literal and info.ncaps == 0 then return info.literal end
  return nil
end

-- The captures that split a path at fixed places: "([^/]+)" (one segment,
-- not empty), "(.+)" and "(.*)" (the rest). A route PREFIX(CAP)SUFFIX of
-- literals with one of them is matched with sub() and a plain find(),
-- which LuaJIT compiles into the request's trace; match() with a pattern
-- would leave it. -> prefix, suffix, kind ("segment", "rest", "rest0"), or
-- nil for any other shape.
local SPLITS = { ["([^/]+)"] = "segment", ["(.+)"] = "rest", ["(.*)"] = "rest0" }

local function split_of(body)
  for cap, kind in pairs(SPLITS) do
    local i, j = find(body, cap, 1, true)
    -- "%(.*)" is a literal "(" then ".*)": the capture must not be escaped.
    if i and (i == 1 or sub(body, i - 1, i - 1) ~= "%") then
      local prefix, suffix = literal_of(sub(body, 1, i - 1)), literal_of(sub(body, j + 1))
      if prefix and suffix and (kind == "segment" or suffix == "") then
        return prefix, suffix, kind
      end
    end
  end
  return nil
end

-- The capture of a split route in path, or nil when it does not match.
local function split_match(spec, path)
  local prefix, suffix = spec.prefix, spec.suffix
  local np, ns, n = #prefix, #suffix, #path
  if n < np + ns or sub(path, 1, np) ~= prefix then return nil end
  local kind = spec.split
  if kind == "segment" then
    if n == np + ns or (ns > 0 and sub(path, n - ns + 1) ~= suffix) then return nil end
    local cap = sub(path, np + 1, n - ns)
    if find(cap, "/", 1, true) then return nil end
    return cap
  end
  if kind == "rest" and n == np then return nil end
  return sub(path, np + 1)
end

-- "^/a$" -> "/a": a trailing "$" is an anchor unless an odd number of "%"
-- escape it.
local function strip_anchors(pattern)
  local body = pattern
  if sub(body, 1, 1) == "^" then body = sub(body, 2) end
  if sub(body, -1) == "$" then
    local pct = #match(sub(body, 1, -2), "%%*$")
    if pct % 2 == 0 then body = sub(body, 1, -2) end
  end
  return body
end
-- s with every magic character escaped: a pattern that matches s itself.
local function escape_pattern(s)
  return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end
_M.escape_pattern = escape_pattern

-- {pattern, HandlerClass, kwargs?, name = ?} -> its spec: what analyse()
-- found, plus index, pattern, regex (anchored), handler_class, kwargs and
-- name. Raises a message naming the route for anything malformed.
local function compile_route(route, index)
  if type(route) ~= "table" then
    error(format("route #%d: table expected, got %s", index, type(route)), 0)
  end
  local pattern, handler_class, kwargs = route[1], route[2], route[3]
  if type(pattern) ~= "string" then
    error(format("route #%d: pattern string expected, got %s", index, type(pattern)), 0)
  end
  if type(handler_class) ~= "table" or handler_class._execute == nil then
    error(format("route #%d (%s): a RequestHandler class expected", index, pattern), 0)
  end
  if kwargs ~= nil and type(kwargs) ~= "table" then
    error(format("route #%d (%s): kwargs table expected, got %s", index, pattern, type(kwargs)), 0)
  end
  local body = strip_anchors(pattern)
  local regex = "^" .. body .. "$"
  -- Lua reports a malformed pattern only when it is used; find it now.
  local ok, info = pcall(find, "", regex)
  if ok then ok, info = pcall(analyse, body) end
  if not ok then
    error(format("route #%d: bad pattern %q: %s", index, pattern, tostring(info)), 0)
  end
  if info.dash then
    log.warn('route "%s": \'-\' is a Lua pattern quantifier here; write "%%-" for a literal dash',
             pattern)
  end
  if info.ncaps == 1 then info.prefix, info.suffix, info.split = split_of(body) end
  info.index = index
  info.pattern = pattern
  info.regex = regex
  info.handler_class = handler_class
  info.kwargs = kwargs or EMPTY
  info.name = route.name
  return info
end

_M.compile_route = compile_route

------------------------------------------------------------------------------
-- Router: routes in order; the first one that matches the whole path wins.

local Router = { __name = "gust.web.Router" }
Router.__index = Router
_M.Router = Router

-- Router.new(default?): default is the spec find() answers when no route
-- matches ({handler_class =, kwargs =, ncaps = 0}).
function Router.new(default)
  return setmetatable({
    routes = {},    -- every spec, in order
    named = {},     -- name -> spec
    default = default,
    _literals = {}, -- plain path -> spec (the first such route wins)
    _patterns = {}, -- specs with magic characters, in route order
  }, Router)
end

-- Appends a route (raises for a malformed one); -> its spec.
function Router:add(route)
  local routes = self.routes
  local spec = compile_route(route, #routes + 1)
  routes[#routes + 1] = spec
  if spec.literal then
    if self._literals[spec.literal] == nil then self._literals[spec.literal] = spec end
  else
    self._patterns[#self._patterns + 1] = spec
  end
  if spec.name ~= nil then
    if self.named[spec.name] then
      log.warn("Multiple handlers named %s; replacing previous value", tostring(spec.name))
    end
    self.named[spec.name] = spec
  end
  return spec
end

-- The path of the route named `name`, its captures filled with the
-- arguments (URL-escaped).
function Router:reverse_url(name, ...)
  local spec = self.named[name]
  if spec == nil then error(format("%s not found in named urls", tostring(name)), 2) end
  local parts = spec.parts
  if parts == nil then
    error(format("cannot reverse url pattern %q", spec.pattern), 2)
  end
  local n = select("#", ...)
  if n ~= spec.nargs then
    error(format("reverse_url(%s): %d argument(s) expected, got %d", tostring(name), spec.nargs, n), 2)
  end
  if n == 0 then return concat(parts) end
  local out = {}
  for i = 1, #parts do
    local p = parts[i]
    if type(p) == "number" then
      out[i] = url_escape(tostring((select(p, ...))), false)
    else
      out[i] = p
    end
  end
  return concat(out)
end

-- Captures are URL-decoded (a "+" stays a "+": this is a path).
local function decode(cap)
  if type(cap) == "string" and find(cap, "%", 1, true) then
    return url_unescape(cap, false)
  end
  return cap
end

-- Two or more captures: decoded into a table only on this rarer path.
local function with_captures(spec, ...)
  local n = spec.ncaps
  local caps = { ... }
  for i = 1, n do caps[i] = decode(caps[i]) end
  return spec, unpack(caps, 1, n)
end

-- find(path) -> the spec of the first route matching path, and its
-- captures, decoded; the default spec when none matches.
function Router:find(path)
  local lit = self._literals[path]
  local limit = lit and lit.index or huge
  local patterns = self._patterns
  for i = 1, #patterns do
    local spec = patterns[i]
    -- An earlier plain route wins over later patterns.
    if spec.index > limit then break end
    local ncaps = spec.ncaps
    if ncaps == 0 then
      if find(path, spec.regex) then return spec end
    elseif ncaps == 1 then
      local cap
      if spec.split then cap = split_match(spec, path) else cap = match(path, spec.regex) end
      if cap ~= nil then return spec, decode(cap) end
    elseif find(path, spec.regex) then
      return with_captures(spec, match(path, spec.regex))
    end
  end
  return lit or self.default
end

return _M
