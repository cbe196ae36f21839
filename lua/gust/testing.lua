-- gust.testing: drive the real loop from busted specs (Tornado's
-- AsyncTestCase / AsyncHTTPTestCase in spirit).
--
--   testing.run(function() ... end, 5)   -- runs fn as a task on the loop;
--                                         -- raises its error or a timeout
--   local base = testing.serve(app)       -- "http://127.0.0.1:PORT"
local core = require "gust.core"

local error = error
local xpcall = xpcall
local traceback = debug.traceback

local _M = { _VERSION = "0.1.0" }

function _M.run(fn, timeout, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'run' (function expected)", 2)
  end
  local done, err, timed_out = false, nil, false
  core.spawn(function(...)
    local ok, e = xpcall(fn, traceback, ...)
    if not ok then err = e end
    done = true
    core.stop()
  end, ...)
  local guard = core.call_later(timeout or 5, function()
    timed_out = true
    core.stop()
  end)
  core.run()
  guard:cancel()
  if err then error(err, 0) end
  if not done then
    error(timed_out and ("testing.run: timed out after " .. (timeout or 5) .. " s")
                    or "testing.run: the loop stopped before the task finished", 2)
  end
end

-- serve(app, opts?) -> base URL, listener: listens in-process on a free
-- loopback port; the loop serves it whenever it runs (inside run()).
function _M.serve(app, opts)
  local listener = app:listen(0, opts and opts.address or "127.0.0.1")
  return "http://127.0.0.1:" .. listener:port(), listener
end

return _M
