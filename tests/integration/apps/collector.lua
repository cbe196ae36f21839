-- For test_process's collector tests. GET / runs a full collection and
-- answers "PAUSE KEPT": the collector's pause then, and the bytes the heap
-- kept. OWN_PAUSE sets the app's own pause when it loads; KEEP_MIB keeps
-- that many MiB alive.
local own = tonumber(os.getenv("OWN_PAUSE"))
if own then collectgarbage("setpause", own) end

local kept = {}
for i = 1, (tonumber(os.getenv("KEEP_MIB")) or 0) * 16 do
  kept[i] = string.rep(string.char(i % 256), 65536 - 64) .. i
end

return function(req)
  collectgarbage()
  local bytes = math.floor(collectgarbage("count") * 1024)
  -- Reading the pause means setting it: set it back at once, with
  -- nothing allocated in between.
  local pause = collectgarbage("setpause", 0)
  collectgarbage("setpause", pause)
  return req:finish(200, nil, { ["Content-Type"] = "text/plain" },
                    pause .. " " .. bytes .. " " .. #kept)
end
