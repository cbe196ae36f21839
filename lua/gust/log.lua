-- gust.log: leveled logging through the C core, so Lua and C lines share
-- one format, one level (--log-level) and one stream.
local core = require "gust.core"

local select = select
local format = string.format
local tostring = tostring
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
