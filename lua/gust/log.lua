-- gust.log: leveled logging through the C core, so Lua and C lines share
-- one format, one level (--log-level) and one stream.
--
-- Text that comes from a request (paths, URIs, header values, arguments)
-- goes into a message through log.escape(), so that a client cannot end a
-- log line and forge the next one: control bytes are written as \xHH.
local core = require "gust.core"

local select = select
local char, find, format, gsub = string.char, string.find, string.format, string.gsub
local tostring, pcall = tostring, pcall
local traceback = debug.traceback
local core_log = core.log
local core_level = core.log_level

local _M = { _VERSION = "0.1.0" }

local rank = { error = 0, warn = 1, info = 2, debug = 3 }

local function enabled(level)
  return rank[level] <= rank[core_level()]
end
_M.enabled = enabled

local function emit(level, fmt, ...)
  if not enabled(level) then
    return
  end
  local msg
  if select("#", ...) > 0 then
    msg = format(fmt, ...)
  else
    msg = tostring(fmt)
  end
  core_log(level, msg)
end

-- Control bytes (0x00-0x1f, 0x7f) and the backslash (so an escape stays
-- unambiguous) as \xHH; the rest, UTF-8 included, as it is.
local ESCAPES = {}
for b = 0, 31 do ESCAPES[char(b)] = format("\\x%02x", b) end
ESCAPES["\127"] = "\\x7f"
ESCAPES["\\"] = "\\x5c"

local function escape(s)
  s = tostring(s)
  if not find(s, "[%z\1-\31\127\\]") then return s end
  return (gsub(s, "[%z\1-\31\127\\]", ESCAPES))
end
_M.escape = escape

-- An xpcall message handler for errors that are going to be logged: the
-- traceback, with the error message escaped (it may quote a request); the
-- traceback's own lines stay lines.
function _M.traceback(err)
  local ok, msg = pcall(tostring, err)
  return traceback(escape(ok and msg or "(error object is not a string)"), 2)
end

function _M.error(fmt, ...) emit("error", fmt, ...) end
function _M.warn(fmt, ...) emit("warn", fmt, ...) end
function _M.info(fmt, ...) emit("info", fmt, ...) end
function _M.debug(fmt, ...) emit("debug", fmt, ...) end

-- log.set_level("debug"); log.level() -> "info"
function _M.set_level(level)
  if not rank[level] then
    error("bad argument #1 to 'set_level' (error, warn, info or debug expected)", 2)
  end
  core_level(level)
end
_M.level = function() return core_level() end

return _M
