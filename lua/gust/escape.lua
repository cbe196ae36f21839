-- Escaping and unescaping for URLs, HTML and JSON (Tornado's escape.py).
--
-- Pure Lua: web.lua, templates and httputil share these, and specs run them
-- without gust.core. The URL functions sit on the per-request argument path,
-- so they use gsub with precomputed lookup tables (no closures, no per-byte
-- concatenation) and return the input untouched when nothing needs changing.

local _M = { _VERSION = "0.1.0" }

local type = type
local tostring = tostring
local tonumber = tonumber
local error = error
local pcall = pcall
local pairs, next, rawset = pairs, next, rawset
local getmetatable, setmetatable = getmetatable, setmetatable
local byte = string.byte
local char = string.char
local find = string.find
local format = string.format
local gsub = string.gsub
local floor = math.floor

local cjson = require "cjson"

-- A private instance, so the settings below do not change what other code
-- gets from require "cjson", and other code cannot change ours.
local json = cjson.new and cjson.new() or cjson
local json_encode_raw = json.encode
local json_decode_raw = json.decode
if json.decode_max_depth then json.decode_max_depth(128) end
if json.encode_max_depth then json.encode_max_depth(128) end

-- byte -> replacement for url_escape; anything not listed is unreserved
-- (RFC 3986: A-Z a-z 0-9 - _ . ~) and never matches ESCAPE_PATTERN.
local ESCAPE_PATTERN = "[^%w%-_%.~]"
local escape_plus, escape_pct = {}, {}
for b = 0, 255 do
  local c = char(b)
  if find(c, ESCAPE_PATTERN) then
    local e = format("%%%02X", b)
    escape_plus[c], escape_pct[c] = e, e
  end
end
escape_plus[" "] = "+"

-- "hh" (either case) -> byte, so unescaping is a single gsub with a table.
local unhex = {}
do
  local digits = "0123456789abcdefABCDEF"
  for i = 1, #digits do
    for j = 1, #digits do
      local h = digits:sub(i, i) .. digits:sub(j, j)
      unhex[h] = char(tonumber(h, 16))
    end
  end
end

local function checkstr(s, fname)
  local t = type(s)
  if t == "string" then return s end
  if t == "number" then return tostring(s) end
  error("bad argument #1 to '" .. fname .. "' (string expected, got "
        .. t .. ")", 3)
end

-- Percent-encode every byte except the unreserved ones. Space becomes "+"
-- unless plus is false (use false for path segments).
function _M.url_escape(s, plus)
  s = checkstr(s, "url_escape")
  return (gsub(s, ESCAPE_PATTERN, plus == false and escape_pct or escape_plus))
end

-- Decode %XX (either case). Invalid sequences ("%", "%4", "%zz") are left
-- as they are rather than rejected: browsers send them and Tornado keeps
-- them. "+" becomes space unless plus is false; it is replaced before %XX
-- decoding so that "%2B" survives as "+".
function _M.url_unescape(s, plus)
  s = checkstr(s, "url_unescape")
  if plus ~= false and find(s, "+", 1, true) then
    s = gsub(s, "+", " ")
  end
  if not find(s, "%", 1, true) then return s end
  return (gsub(s, "%%(%x%x)", unhex))
end

local xhtml_map = {
  ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
  ['"'] = "&quot;", ["'"] = "&#39;",
}

function _M.xhtml_escape(s)
  if type(s) ~= "string" then s = tostring(s) end
  return (gsub(s, "[&<>\"']", xhtml_map))
end

-- Only the entities xhtml_escape and common HTML produce; a full HTML5 table
-- would be 2,000 entries for text that gust itself never generates.
local named_entities = {
  amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = "\194\160",
}

local function utf8_char(cp)
  if cp < 0x80 then
    return char(cp)
  elseif cp < 0x800 then
    return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40,
                0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
              0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- Unknown or out-of-range entities come back unchanged (nil from a gsub
-- function keeps the match), as in Tornado's _convert_entity.
local function convert_entity(hash, body)
  if hash == "" then return named_entities[body] end
  local cp
  if byte(body) == 120 or byte(body) == 88 then -- "x" / "X"
    cp = tonumber(body:sub(2), 16)
  else
    cp = tonumber(body, 10)
  end
  if not cp or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
    return nil
  end
  return utf8_char(cp)
end

function _M.xhtml_unescape(s)
  s = checkstr(s, "xhtml_unescape")
  if not find(s, "&", 1, true) then return s end
  return (gsub(s, "&(#?)(%w+);", convert_entity))
end

-- JSON arrays. A Lua table has no type of its own: lua-cjson writes an
-- empty one as {}. A table marked with json_array() (or the shared
-- json_empty_array) is written as [] when empty. Debian's lua-cjson has no
-- array marker, so while encoding, each marked empty table briefly holds a
-- placeholder element whose encoding is then replaced by []; nothing is
-- walked until some table has been marked.
local array_mt = { __name = "gust.json_array" }
local marked = false
local PLACEHOLDER = "\1gust-empty-array\1"
local PLACEHOLDER_JSON = '%["\\u0001gust%-empty%-array\\u0001"%]' -- a pattern

function _M.json_array(t)
  if t ~= nil and type(t) ~= "table" then
    error("bad argument #1 to 'json_array' (table expected, got " .. type(t) .. ")", 2)
  end
  marked = true
  return setmetatable(t or {}, array_mt)
end
_M.json_empty_array = _M.json_array({})

-- The marked empty tables in v, each once (cycles are cjson's to refuse).
local function find_empty_arrays(v, found, seen)
  if seen[v] then return end
  seen[v] = true
  if getmetatable(v) == array_mt and next(v) == nil then
    found[#found + 1] = v
    return
  end
  for k, x in pairs(v) do
    if type(k) == "table" then find_empty_arrays(k, found, seen) end
    if type(x) == "table" then find_empty_arrays(x, found, seen) end
  end
end

-- lua-cjson 2.1 escapes every "/" already; the gsub covers builds that do
-- not, so "</script>" can never close the <script> the JSON sits in.
function _M.json_encode(v)
  local empties
  if marked and type(v) == "table" then
    empties = {}
    find_empty_arrays(v, empties, {})
    for i = 1, #empties do rawset(empties[i], 1, PLACEHOLDER) end
  end
  local ok, res = pcall(json_encode_raw, v)
  if empties then
    for i = 1, #empties do rawset(empties[i], 1, nil) end
  end
  if not ok then error("json_encode: " .. tostring(res), 2) end
  if empties and empties[1] then res = gsub(res, PLACEHOLDER_JSON, "[]") end
  if find(res, "</", 1, true) then res = gsub(res, "</", "<\\/") end
  return res
end

-- Input comes from peers, so anything unparsable (including a non-string)
-- is a runtime failure, never an error.
function _M.json_decode(s)
  if type(s) ~= "string" then
    return nil, "json_decode: string expected, got " .. type(s)
  end
  local ok, res = pcall(json_decode_raw, s)
  if not ok then return nil, "json_decode: " .. tostring(res) end
  return res
end

-- The JSON null sentinel, so callers can compare decoded values to it.
_M.null = cjson.null

-- As Tornado: control characters count as whitespace, and the ends are
-- trimmed.
function _M.squeeze(s)
  s = checkstr(s, "squeeze")
  s = gsub(s, "[%z\1- ]+", " ")
  local first = find(s, "[^ ]")
  if not first then return "" end
  local last = find(s, " ?$")
  return s:sub(first, last - 1)
end

return _M
