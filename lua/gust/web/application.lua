-- gust.web.application: the Application -- settings, the route table
-- (gust.web.routing) and the function the core calls for every request.

local _M = { _VERSION = "0.1.0" }

local type, tostring, error, pcall = type, tostring, error, pcall
local pairs, setmetatable = pairs, setmetatable
local format = string.format
local find_str = string.find
local getinfo = debug.getinfo

local core = require "gust.core"
local handler = require "gust.web.handler"
local handlers = require "gust.web.handlers"
local routing = require "gust.web.routing"
local static = require "gust.web.static"

local Router, EMPTY, escape_pattern = routing.Router, routing.EMPTY, routing.escape_pattern
local serve, serve1, find = handler.serve, handler.serve1, Router.find
local ErrorHandler = handlers.ErrorHandler
local StaticFileHandler = static.StaticFileHandler

-- A bad route is the app's mistake: raised at the app's line. That is the
-- first caller outside gust's own web modules, when the stack still has it;
-- `return web.Application{...}` is a tail call that leaves none, and then
-- the line of the route's pattern in the script being loaded is named.
local function route_error(err, pattern)
  local level = 2
  while true do
    local info = getinfo(level + 1, "S")
    if info == nil then break end
    if info.what ~= "C" and not find_str(info.source, "/gust/web", 1, true) then
      error(err, level + 1)
    end
    level = level + 1
  end
  local path = core.loading_app and core.loading_app()
  local f = path and type(pattern) == "string" and io.open(path)
  if f then
    local n, quoted = 0, format("%q", pattern)
    for line in f:lines() do
      n = n + 1
      if find_str(line, quoted, 1, true) then
        f:close()
        error(format("%s:%d: %s", path, n, err), 0)
      end
    end
    f:close()
  end
  error(err, 0)
end

local function copy(t)
  local out = {}
  if t then for k, v in pairs(t) do out[k] = v end end
  return out
end

local Application = { __name = "gust.web.Application" }
Application.__index = Application

local DEFAULT_SETTINGS = {
  debug = false,
  xsrf_cookies = false,
  static_url_prefix = "/static/",
  compress_response = false,
  xheaders = false,
  max_body_size = 100 * 1024 * 1024,
  max_header_size = 64 * 1024,
  idle_connection_timeout = 60,
  header_timeout = 10,
  websocket_max_message_size = 10 * 1024 * 1024,
  websocket_compression = false,
}

function Application.new(cls, routes, settings)
  if routes ~= nil and type(routes) ~= "table" then
    error("bad argument #1 to 'Application' (table of routes expected, got " .. type(routes) .. ")", 3)
  end
  if settings ~= nil and type(settings) ~= "table" then
    error("bad argument #2 to 'Application' (settings table expected, got " .. type(settings) .. ")", 3)
  end
  settings = copy(settings)
  for k, v in pairs(DEFAULT_SETTINGS) do
    if settings[k] == nil then settings[k] = v end
  end
  if settings.gzip ~= nil and settings.compress_response == false then
    settings.compress_response = settings.gzip -- Tornado's old name
  end
  -- As Tornado: debug means tracebacks in error pages and no caches.
  if settings.debug then
    if settings.serve_traceback == nil then settings.serve_traceback = true end
    if settings.compiled_template_cache == nil then settings.compiled_template_cache = false end
    if settings.static_hash_cache == nil then settings.static_hash_cache = false end
  end

  -- Unmatched paths: a 404 unless the app names its own handler.
  local router = Router.new({
    handler_class = settings.default_handler_class or ErrorHandler,
    kwargs = settings.default_handler_args
      or (settings.default_handler_class == nil and { status_code = 404 } or EMPTY),
    ncaps = 0,
  })
  local self = setmetatable({
    settings = settings,
    named_handlers = router.named,
    _router = router,
  }, cls)

  local list = {}
  if settings.static_path then
    -- First, as in Tornado, so an app's catch-all cannot shadow it.
    list[1] = { escape_pattern(settings.static_url_prefix) .. "(.*)",
                settings.static_handler_class or StaticFileHandler,
                copy(settings.static_handler_args) }
    list[1][3].path = settings.static_path
  end
  for i = 1, #(routes or EMPTY) do list[#list + 1] = routes[i] end
  for i = 1, #list do
    local ok, err = pcall(router.add, router, list[i])
    if not ok then route_error(tostring(err), type(list[i]) == "table" and list[i][1]) end
  end
  return self
end

setmetatable(Application, {
  __call = function(cls, routes, settings) return cls:new(routes, settings) end,
})

function Application:_add_route(route)
  self._router:add(route)
end

-- Appends routes after the existing ones.
function Application:add_handlers(routes)
  for i = 1, #routes do
    local ok, err = pcall(self._router.add, self._router, routes[i])
    if not ok then route_error(tostring(err), type(routes[i]) == "table" and routes[i][1]) end
  end
end

function Application:reverse_url(name, ...)
  return self._router:reverse_url(name, ...)
end

function Application:listen(port, address)
  local listener, err = core.listen(self, port, address, self.settings)
  if not listener then
    error(format("cannot listen on %s port %s: %s", address or "the default address",
                 tostring(port), tostring(err)), 2)
  end
  return listener
end

-- What the core calls, in a fresh coroutine, for every request. Routes of
-- at most one capture (nearly all) take serve1, which has no varargs; for
-- more, the path is matched again to pass them all on.
function Application:__call(req, method, path, query)
  local router = self._router
  local spec, cap = find(router, path)
  local ncaps = spec.ncaps
  if ncaps < 2 then
    return serve1(self, req, method, path, query, spec, ncaps, cap)
  end
  return serve(self, req, method, path, query, find(router, path))
end

_M.Application = Application

-- url(pattern, handler, kwargs?, name?): Tornado's spelling of a route.
function _M.url(pattern, handler_class, kwargs, name)
  return { pattern, handler_class, kwargs, name = name }
end

return _M
