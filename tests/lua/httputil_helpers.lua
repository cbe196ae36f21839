-- What the gust.httputil specs share.

local assert = require "luassert"
local unpack = unpack or table.unpack -- luacheck: ignore 143
local format = string.format

local _M = {}

-- The real HMAC comes from C and is tested there; the signing logic only
-- needs a deterministic, injective stand-in.
function _M.fake_hmac(key, msg) return key .. "#" .. msg end

function _M.hex(s)
  return (s:gsub(".", function(c) return format("%02x", c:byte()) end))
end

-- Runs fn with a deterministic PRNG and returns random strings over an
-- alphabet that is dense in the bytes parsers care about.
function _M.random_strings(n, alphabet, maxlen)
  math.randomseed(12345)
  local out = {}
  for i = 1, n do
    local t = {}
    for j = 1, math.random(0, maxlen) do
      local k = math.random(1, #alphabet)
      t[j] = alphabet:sub(k, k)
    end
    out[i] = table.concat(t)
  end
  return out
end

-- A module's private upvalue, to check that its memo tables stay bounded.
function _M.upvalue(fn, wanted)
  for i = 1, 100 do
    local name, value = debug.getupvalue(fn, i)
    if name == wanted then return value end
    if name == nil then return nil end
  end
end

function _M.count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Calls fn(...) from a frame in this file, so error(msg, 2) must name it
-- (or the spec's own frame, when fn is a closure made there) rather than
-- gust/httputil.lua.
function _M.caller_error(fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, err = pcall(function()
    local r = fn(unpack(args, 1, args.n))
    return r -- not a tail call: this frame must stay on the stack
  end)
  assert.is_false(ok)
  assert.matches("httputil_%a+%.lua:%d+:", err) -- error(msg, 2) names the caller
  return err
end

return _M
