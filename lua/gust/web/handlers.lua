-- gust.web.handlers: the built-in handlers beside StaticFileHandler
-- (gust.web.static) and ProxyHandler (gust.web.proxy): ErrorHandler,
-- RedirectHandler, FallbackHandler and MetricsHandler.

local _M = { _VERSION = "0.1.0" }

local type, tostring, select, error = type, tostring, select, error
local getmetatable, rawget = getmetatable, rawget
local find, gsub = string.find, string.gsub

local core = require "gust.core"
local errors = require "gust.web.errors"
local handler = require "gust.web.handler"

local HTTPError = errors.HTTPError
local RequestHandler = handler.RequestHandler
local SUPPORTED_METHODS, VERBS = handler.SUPPORTED_METHODS, handler.VERBS
local run_protected = handler.run_protected

local function noop() end

-- Answers every request with status_code (404 by default): the handler for
-- unmatched paths. It defines every verb so that the method check passes
-- and prepare() gives the real answer.
local ErrorHandler = RequestHandler:extend()
ErrorHandler.__name = "gust.web.ErrorHandler"

function ErrorHandler:initialize(kwargs)
  self._error_status = kwargs.status_code or 404
end

function ErrorHandler:prepare()
  error(HTTPError(self._error_status), 0)
end

-- No XSRF check: a POST to a missing page is a 404, not a 403.
ErrorHandler.check_xsrf_cookie = noop
for i = 1, #SUPPORTED_METHODS do ErrorHandler[VERBS[SUPPORTED_METHODS[i]]] = noop end
_M.ErrorHandler = ErrorHandler

-- {url=, permanent=true}: "{0}", "{1}", ... in url are the route captures;
-- the request's query string is carried over.
local RedirectHandler = RequestHandler:extend()
RedirectHandler.__name = "gust.web.RedirectHandler"

function RedirectHandler:initialize(kwargs)
  if type(kwargs.url) ~= "string" then
    error("RedirectHandler needs a 'url' string in its route kwargs", 2)
  end
  self._url = kwargs.url
  self._permanent = kwargs.permanent ~= false
end

function RedirectHandler:get(...)
  local to = self._url
  local n = select("#", ...)
  if n > 0 and find(to, "{", 1, true) then
    local args = {}
    for i = 1, n do args[tostring(i - 1)] = tostring((select(i, ...))) end
    to = gsub(to, "{(%d+)}", args)
  end
  local query = self.request.query
  if query ~= "" then
    to = to .. (find(to, "?", 1, true) and "&" or "?") .. query
  end
  self:redirect(to, self._permanent)
end
_M.RedirectHandler = RedirectHandler

-- {fallback = container}: every request on the route goes to the
-- container, called as fallback(handler, ...captures) -- a WSAPIContainer
-- (gust.wsapi), a gust.web.proxy Proxy, or any function. It answers through the
-- handler (set_status, set_header, write, flush, finish); if it returns
-- without finishing, the response is finished as for any verb.
--
-- Tornado's FallbackHandler runs the container from prepare(); here the
-- class runs its own _execute, because a hosted application needs the
-- request as it came:
--   * any method goes through (PROPFIND as well as GET), never a 405;
--   * the body is not parsed (the hosted app reads it raw, and a malformed
--     form is its business, not a 400), and there is no XSRF check (the
--     hosted app has its own);
--   * initialize() and prepare() still run first, so a subclass can check
--     authentication or answer some requests itself.
-- Errors go the usual way: a logged 500 before anything was flushed; after,
-- the error is logged and the connection cut (send_error), so a client
-- cannot take a truncated body for a whole one.
local FallbackHandler = RequestHandler:extend()
FallbackHandler.__name = "gust.web.FallbackHandler"

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

function FallbackHandler:initialize(kwargs)
  local fallback = kwargs.fallback
  if not is_callable(fallback) then
    error("FallbackHandler needs a callable 'fallback' in its route kwargs, got "
          .. type(fallback), 2)
  end
  self.fallback = fallback
end

local function call_fallback(self, ...)
  return self.fallback(self, ...)
end
-- The verbs, for subclasses and callers that name them; _execute below
-- calls the fallback for every method, these included.
for i = 1, #SUPPORTED_METHODS do FallbackHandler[VERBS[SUPPORTED_METHODS[i]]] = call_fallback end

local function execute_fallback(self, kwargs, ...)
  self:set_default_headers()
  self:initialize(kwargs)
  self:prepare()
  if self._finished then return end
  self.fallback(self, ...)
  if self._auto_finish and not self._finished then self:finish() end
end

function FallbackHandler:_execute(kwargs, _, ...)
  return run_protected(self, execute_fallback, kwargs, ...)
end
_M.FallbackHandler = FallbackHandler

-- web.MetricsHandler: the server's Prometheus text (DESIGN §4.10), the same
-- numbers as --metrics PATH, summed over the workers; for apps that want
-- the page behind their own route (and, say, @authenticated).
local MetricsHandler = RequestHandler:extend()
MetricsHandler.__name = "gust.web.MetricsHandler"
function MetricsHandler:get()
  self:set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
  self:finish(core.metrics())
end
_M.MetricsHandler = MetricsHandler

return _M
