-- gust.shared: dictionaries in shared memory (DESIGN §4.9), the same for
-- every worker of a server and surviving reloads, with the conventions of
-- OpenResty's ngx.shared.DICT:
--
--   local shared = require "gust.shared"
--   local hits = shared.dict("hits", "1m")
--   hits:incr("/", 1, 0)                     --> 1, 2, ... atomic across workers
--
-- shared.dict(name, size) opens the dict `name`, creating it with `size`
-- bytes (a number, or "64k", "10m", "1g") if no worker of this server has
-- yet. Every later call, in any worker, gets the same dict: when the sizes
-- differ, the dict that exists keeps its size (dict:capacity() tells it).
-- Names are 1 to 128 of A-Z a-z 0-9 _ . -; sizes go from 8k to 1t and are
-- rounded up to a page. The memory is reserved when the dict is created.
--
-- Methods (misuse raises; a runtime failure returns nil, err):
--   get(k)                      -> value, flags? | nil
--   set(k, v, ttl?, flags?)     -> true | nil, "no memory"   (v nil: delete)
--   add(k, v, ttl?, flags?)     -> true | false, "exists" | nil, "no memory"
--   replace(k, v, ttl?, flags?) -> true | false, "not found" | nil, "no memory"
--   incr(k, n, init?, init_ttl?) -> new value | nil, "not found" |
--                                  nil, "not a number" | nil, "no memory"
--   delete(k) -> true;  ttl(k) -> seconds left (0: none) | nil, "not found"
--   expire(k, ttl) -> true | nil, "not found";  keys(max?) (default 1024, 0: all)
--   flush_all();  flush_expired(max?) -> count;  capacity();  free_space();  name()
--
-- Keys are strings (numbers are turned into strings), 1 to 65535 bytes.
-- Values are strings, numbers and booleans. ttl is in seconds (fractions
-- allowed), 0 or nil for none; expired entries vanish on access, and a set
-- that finds no room first frees every expired entry. There is no LRU
-- eviction: a full dict answers nil, "no memory", and a set that fails
-- this way leaves the key absent.

local _M = { _VERSION = "0.1.0" }

local type, error, tonumber, tostring = type, error, tonumber, tostring
local floor = math.floor
local match, lower = string.match, string.lower

local core = require "gust.core"
local shdict = core.shdict
local MIN_SIZE, MAX_SIZE = core.SHDICT_MIN_SIZE, core.SHDICT_MAX_SIZE

local units = { [""] = 1, k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024,
                t = 1024 * 1024 * 1024 * 1024 }

-- "64k" -> 65536; numbers pass through. nil when it is not a size.
local function parse_size(size)
  if type(size) == "number" then
    return size
  end
  if type(size) ~= "string" then
    return nil
  end
  local digits, unit = match(size, "^%s*(%d+)%s*([kKmMgGtT]?)[bB]?%s*$")
  if not digits then
    return nil
  end
  return tonumber(digits) * units[lower(unit)]
end
_M.parse_size = parse_size

-- shared.dict(name, size) -> dict | nil, err
function _M.dict(name, size)
  if type(name) ~= "string" or #name == 0 or #name > 128 or not match(name, "^[A-Za-z0-9_.%-]+$") then
    error("bad argument #1 to 'dict' (a name is 1 to 128 of A-Z a-z 0-9 _ . -, got "
          .. tostring(name) .. ")", 2)
  end
  local bytes = parse_size(size)
  if not bytes or bytes ~= floor(bytes) or bytes < MIN_SIZE or bytes > MAX_SIZE then
    error("bad argument #2 to 'dict' (size must be from 8k to 1t: a number of bytes or "
          .. "a string such as \"64k\", \"10m\", \"1g\"; got " .. tostring(size) .. ")", 2)
  end
  return shdict(name, bytes)
end

return _M
