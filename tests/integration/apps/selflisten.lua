-- Returns nothing: the script makes its own listener through core.listen
-- and gust just runs the loop. It prints the port it got in the usual form.
local core = require "gust.core"

local n = 0
local listener, err = core.listen(function(req, method, path, _query)
  n = n + 1
  req:finish(200, nil, {["Content-Type"] = "text/plain"},
             string.format("self-listening %s %s #%d", method, path, n))
end, 0, "127.0.0.1")
assert(listener, err)
io.write(string.format("selflisten: listening on http://127.0.0.1:%d\n", listener:port()))
