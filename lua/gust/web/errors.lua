-- gust.web.errors: what a handler raises to end a request (HTTPError,
-- MissingArgumentError, Finish), the reason phrases, and the xpcall
-- message handler the web package runs handler code under.
--
-- HTTPError and friends are tables raised with error(); the message
-- handler passes them through untouched and takes a traceback, at the
-- error site, for anything else.

local _M = { _VERSION = "0.1.0" }

local type, tostring, select, error, pcall = type, tostring, select, error, pcall
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local format = string.format
local traceback = debug.traceback

local core = require "gust.core"
local log = require "gust.log"

-- Reason phrases (RFC 9110), status -> phrase: the core's own table, the
-- one its status lines use. Error pages name them and set_status() checks
-- codes against them.
local RESPONSES = core.responses
_M.responses = RESPONSES


local HTTPError = { __name = "gust.web.HTTPError", _http_error = true }
HTTPError.__index = HTTPError

function HTTPError.__tostring(e)
  local s = "HTTP " .. tostring(e.status_code) .. ": "
    .. (e.reason or RESPONSES[e.status_code] or "Unknown")
  if e.log_message then s = s .. " (" .. tostring(e.log_message) .. ")" end
  return s
end

-- HTTPError(status?, log_message?, ...): extra arguments format log_message
-- (Tornado's log_message % args). log_message may also be a table
-- { log_message =, reason =, headers = }. headers are set on the error
-- response after send_error() clears the handler's own (405 uses it for
-- Allow).
local function new_http_error(mt, status, log_message, ...)
  if status == nil then status = 500 end
  if type(status) ~= "number" then
    error("bad argument #1 to 'HTTPError' (number expected, got " .. type(status) .. ")", 3)
  end
  local e = setmetatable({ status_code = status }, mt)
  if type(log_message) == "table" then
    e.log_message, e.reason, e.headers = log_message.log_message, log_message.reason,
      log_message.headers
  elseif log_message ~= nil then
    if select("#", ...) > 0 then log_message = format(log_message, ...) end
    e.log_message = tostring(log_message)
  end
  return e
end

setmetatable(HTTPError, {
  __call = function(_, status, log_message, ...)
    return new_http_error(HTTPError, status, log_message, ...)
  end,
})
_M.HTTPError = HTTPError

-- A 400 that names the missing argument; an HTTPError in every respect.
local MissingArgumentError = {
  __name = "gust.web.MissingArgumentError",
  __tostring = HTTPError.__tostring,
  _http_error = true,
}
MissingArgumentError.__index = MissingArgumentError
setmetatable(MissingArgumentError, {
  __index = HTTPError,
  __call = function(_, arg_name)
    local e = new_http_error(MissingArgumentError, 400,
                             "Missing argument " .. tostring(arg_name))
    e.arg_name = arg_name
    return e
  end,
})
_M.MissingArgumentError = MissingArgumentError

local function is_http_error(e)
  if type(e) ~= "table" then return false end
  local mt = getmetatable(e)
  return type(mt) == "table" and rawget(mt, "_http_error") == true
end
_M.is_http_error = is_http_error

-- error(web.Finish(chunk?)) ends the request like finish(chunk), without
-- an error being logged (Tornado's Finish exception).
local Finish = { __name = "gust.web.Finish" }
Finish.__index = Finish
Finish.__tostring = function() return "Finish" end
setmetatable(Finish, {
  __call = function(_, chunk) return setmetatable({ chunk = chunk }, Finish) end,
})
_M.Finish = Finish

-- xpcall message handler: the traceback must be taken here, at the error
-- site, since the stack is gone once xpcall returns (Turbo's bug). It is
-- handed over in a module variable rather than a table: xpcall returns
-- right after the handler runs, with no yield in between, so the caller
-- reads it before any other coroutine can overwrite it. The message is
-- escaped as gust.log.escape does (it may quote the request, and the
-- traceback is logged); the traceback's own lines stay lines.
local last_traceback

local function on_error(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if mt == Finish or (type(mt) == "table" and rawget(mt, "_http_error") == true) then
      return err
    end
  end
  local ok, msg = pcall(tostring, err)
  last_traceback = traceback(log.escape(ok and msg or "(error object is not a string)"), 2)
  return err
end

local function take_traceback(err)
  local tb = last_traceback
  last_traceback = nil
  if tb == nil and not is_http_error(err) then tb = log.escape(err) end
  return tb
end

_M.on_error = on_error

-- The traceback on_error took for err (then forgotten), or, for an error
-- that was not raised through it, err as a string; nil for an HTTPError.
_M.take_traceback = take_traceback

return _M
