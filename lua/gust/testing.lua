-- gust.testing: drive the real loop from busted specs (Tornado's
-- AsyncTestCase / AsyncHTTPTestCase in spirit).
--
--   testing.run(function() ... end, 5)   -- runs fn as a task on the loop;
--                                         -- raises its error or a timeout
--   local base = testing.serve(app)       -- "http://127.0.0.1:PORT"
--   local resp = testing.fetch(app, "/path", {method = "POST", body = "x"})
local core = require "gust.core"

local error = error
local xpcall = xpcall
local traceback = debug.traceback

local _M = { _VERSION = "0.1.0" }

function _M.run(fn, timeout, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'run' (function expected)", 2)
  end
  local done, err, timed_out, over = false, nil, false, false
  core.spawn(function(...)
    local ok, e = xpcall(fn, traceback, ...)
    if not ok then err = e end
    done = true
    -- A task that outlived its run (a timeout) must not stop a later one.
    if not over then core.stop() end
  end, ...)
  local guard = core.call_later(timeout or 5, function()
    timed_out = true
    core.stop()
  end)
  core.run()
  over = true
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

-- fetch(app, path, opts?) -> resp | nil, err: serves app on a free port,
-- fetches path (or a full URL) from it with gust.httpclient, stops serving
-- and returns the response. Inside a task it fetches there; from the main
-- thread of a spec it runs the loop for the fetch, as run() does.
function _M.fetch(app, path, opts)
  if type(path) ~= "string" then
    error("bad argument #2 to 'fetch' (path string expected)", 2)
  end
  local base, listener = _M.serve(app)
  local url = path:find("^https?://") and path or base .. path
  local client = require("gust.httpclient").AsyncHTTPClient()
  local resp, err
  local co, main = coroutine.running()
  local ok, e = pcall(function()
    if co and not main then
      resp, err = client:fetch(url, opts)
    else
      local timeout = (opts and opts.request_timeout or 20) + 5
      _M.run(function() resp, err = client:fetch(url, opts) end, timeout)
    end
  end)
  listener:close()
  if not ok then error(e, 0) end
  return resp, err
end

return _M
