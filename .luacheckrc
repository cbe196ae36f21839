-- luacheck configuration: tests/run-all runs `luacheck .` from the project
-- root. LuaJIT 2.1 everywhere; no globals may be set or read beyond its
-- standard library (STYLE: "No globals; luacheck enforces this").
std = "luajit"

-- Methods keep `self` in their signature even when a body does not read it:
-- handler hooks a subclass overrides, the IOLoop facade over the one loop.
self = false

-- An argument whose name starts with "_" is there for its position only
-- (a callback with a fixed signature: close hooks, fd handlers, routes).
ignore = { "212/_.*" }

-- busted specs and their helpers use busted's globals (describe, it,
-- assert.*, spy, ...).
files["tests/lua"] = { std = "+busted" }

exclude_files = {
  -- Deliberately fails to parse (the --check and reload tests load it).
  "tests/integration/apps/broken_syntax.lua",
  -- Build trees and anything a test run leaves behind.
  "build*/**",
  "tests/fuzz/**",
}
