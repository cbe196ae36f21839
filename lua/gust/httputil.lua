-- HTTP helpers that need no socket: headers, query strings, form bodies,
-- cookies, dates and signed values (Tornado's httputil.py plus the signing
-- half of web.py). Pure Lua so web.lua and the specs run without gust.core;
-- HMAC-SHA256, the one primitive that must come from C, is passed in.
-- HTTPHeaders.from_list and parse_qs run per request: no closures, and no
-- string is built that is not returned.

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, error = type, tostring, tonumber, error
local next, pairs, ipairs, setmetatable = next, pairs, ipairs, setmetatable
local byte, char, find, format = string.byte, string.char, string.find, string.format
local gsub, lower, upper = string.gsub, string.lower, string.upper
local match, sub = string.match, string.sub
local concat, sort = table.concat, table.sort
local floor = math.floor
local os_time, os_date = os.time, os.date
local bit = require "bit"
local band, bor, bxor, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift
-- Presizing the header table skips the rehash at every power of two, which
-- is half the cost of from_list.
local ok_new, new_tab = pcall(require, "table.new")
if not ok_new then new_tab = function() return {} end end

local escape = require "gust.escape"
local url_escape, url_unescape = escape.url_escape, escape.url_unescape

-- Misuse must point at the caller's line: level 3 from a public function,
-- 4 from a helper it calls.
local function argerror(n, fname, expected, v, level)
  error(format("bad argument #%d to '%s' (%s expected, got %s)",
               n, fname, expected, type(v)), level or 3)
end

-- Names that code looks up are a small fixed set, but some come from peers:
-- the caches stop growing here so a client cannot grow them without bound.
local CACHE_MAX = 1000

local lower_cache, lower_count = {}, 0
local function lower_name(name)
  local l = lower_cache[name]
  if l then return l end
  l = lower(name)
  if lower_count < CACHE_MAX then
    lower_cache[name], lower_count = l, lower_count + 1
  end
  return l
end

local norm_cache, norm_count = {}, 0

-- "content-TYPE" -> "Content-Type", as Tornado's _normalize_header.
function _M.normalize_header_name(name)
  local n = norm_cache[name]
  if n then return n end
  if type(name) ~= "string" then argerror(1, "normalize_header_name", "string", name) end
  n = gsub(gsub(lower(name), "^%l", upper), "%-%l", upper)
  if norm_count < CACHE_MAX then
    norm_cache[name], norm_count = n, norm_count + 1
  end
  return n
end

------------------------------------------------------------------------------
-- HTTPHeaders. Headers live in self[STORE] (lower-case name -> value, or an
-- array once a name repeats), not in the instance: a peer may send a header
-- called "get" or "_x", and it must never shadow a method or private field.
-- STORE is a key no caller can name, so no assignment can clobber it.

local HTTPHeaders, methods = {}, {}
local STORE = {}

local function joined(v)
  if type(v) == "table" then return concat(v, ",") end
  return v
end

local function push(store, key, value)
  local old = store[key]
  if old == nil then
    store[key] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  elseif value ~= nil then
    store[key] = { old, value }
  end
end

local function store_key(name, fname)
  if type(name) ~= "string" then argerror(1, fname, "string", name, 4) end
  return lower_name(name)
end

local function check_value(value, fname)
  local t = type(value)
  if t == "string" then return value end
  if t == "number" then return tostring(value) end
  error(format("bad argument #2 to '%s' (string expected, got %s)", fname, t), 3)
end

local mt = {
  __name = "gust.HTTPHeaders",
  -- A method wins over a header of the same name; h:get("get") reads it.
  __index = function(self, name)
    local m = methods[name]
    if m ~= nil then return m end
    if type(name) ~= "string" then return nil end
    return joined(self[STORE][lower_name(name)])
  end,
  __newindex = function(self, name, value)
    if value ~= nil then value = check_value(value, "__newindex") end
    self[STORE][store_key(name, "__newindex")] = value
  end,
}

-- Names are trusted to be lower-case already, as the core delivers them, so
-- this costs one table per request plus one per repeated header.
function HTTPHeaders.from_list(flat)
  if type(flat) ~= "table" then argerror(1, "from_list", "table", flat) end
  local n = #flat
  local store = new_tab(0, floor(n / 2))
  for i = 1, n - 1, 2 do push(store, flat[i], flat[i + 1]) end
  return setmetatable({ [STORE] = store }, mt)
end

function HTTPHeaders.new()
  return setmetatable({ [STORE] = {} }, mt)
end

function methods:get(name, default)
  local v = self[STORE][store_key(name, "get")]
  if v == nil then return default end
  return joined(v)
end

-- A fresh array every time, so callers may keep or modify it.
function methods:get_list(name)
  local v = self[STORE][store_key(name, "get_list")]
  if type(v) ~= "table" then return { v } end -- { nil } is {}
  local copy = {}
  for i = 1, #v do copy[i] = v[i] end
  return copy
end

function methods:add(name, value)
  push(self[STORE], store_key(name, "add"), check_value(value, "add"))
end

function methods:remove(name)
  self[STORE][store_key(name, "remove")] = nil
end

local function headers_next(self, name)
  local v
  name, v = next(self[STORE], name)
  if name == nil then return nil end
  return name, joined(v)
end

function methods:pairs()
  return headers_next, self, nil
end
mt.__pairs = methods.pairs

mt.__tostring = function(self)
  local out = {}
  for name, v in next, self[STORE] do
    if type(v) ~= "table" then v = { v } end
    for i = 1, #v do
      out[#out + 1] = _M.normalize_header_name(name) .. ": " .. v[i] .. "\r\n"
    end
  end
  sort(out)
  return concat(out)
end

_M.HTTPHeaders = HTTPHeaders

------------------------------------------------------------------------------
-- Query strings and form bodies

-- The pieces of s from i on into out. eq, the next "=" at or after i, is
-- kept across pieces: looking for it afresh in each piece would rescan the
-- rest of the string every time, quadratic on a body like "a&a&a&...".
-- A tail call per piece, not a loop: a loop in the middle of a request
-- stops LuaJIT's trace of it ("inner loop in root trace"), and most
-- queries have a piece or two, which the trace takes in its stride.
local function parse_pieces(s, out, i, len, eq)
  if i > len then return out end
  local amp = find(s, "&", i, true) or len + 1
  if eq and eq < i then eq = find(s, "=", i, true) end
  -- A piece without "=" is a name with a blank value (Python's
  -- keep_blank_values); an empty piece or an empty name is dropped.
  if amp > i and eq ~= i then
    local name, value
    if eq and eq < amp then
      name, value = sub(s, i, eq - 1), url_unescape(sub(s, eq + 1, amp - 1))
    else
      name, value = sub(s, i, amp - 1), ""
    end
    name = url_unescape(name)
    local list = out[name]
    if list then list[#list + 1] = value else out[name] = { value } end
  end
  return parse_pieces(s, out, amp + 1, len, eq)
end

function _M.parse_qs(s, out)
  if out == nil then
    out = {}
  elseif type(out) ~= "table" then
    argerror(2, "parse_qs", "table", out)
  end
  if s == nil then return out end
  if type(s) ~= "string" then argerror(1, "parse_qs", "string", s) end
  return parse_pieces(s, out, 1, #s, 0)
end
local parse_qs = _M.parse_qs

-- 'form-data; name="a;b"; filename*=UTF-8''%e2%82%ac' -> "form-data",
-- { name = "a;b", filename = "\226\130\172" }. Quotes may hide ";", so this
-- walks the string instead of splitting it.
local function parse_header(value)
  local pos = find(value, ";", 1, true)
  local main = lower(match(sub(value, 1, (pos or 0) - 1), "^%s*(.-)%s*$"))
  local params = {}
  while pos do
    local _, ke, key = find(value, "^%s*([^=;%s]+)%s*=%s*", pos + 1)
    if not ke then
      pos = find(value, ";", pos + 1, true)
    else
      key = lower(key)
      local v
      if byte(value, ke + 1) == 34 then -- quoted-string, \-escapes
        local c = find(value, '[\\"]', ke + 2)
        while c and byte(value, c) == 92 do c = find(value, '[\\"]', c + 2) end
        c = c or #value + 1
        v = gsub(sub(value, ke + 2, c - 1), "\\(.)", "%1")
        pos = find(value, ";", c + 1, true)
      else
        pos = find(value, ";", ke + 1, true)
        v = match(sub(value, ke + 1, (pos or 0) - 1), "^(.-)%s*$")
      end
      if sub(key, -1) == "*" then
        -- RFC 5987 ext-value, charset'lang'%XX; beats the plain one.
        local enc = match(v, "^[^']*'[^']*'(.*)$")
        if enc then params[sub(key, 1, -2)] = url_unescape(enc, false) end
      elseif params[key] == nil then
        params[key] = v
      end
    end
  end
  return main, params
end

local MULTIPART_ERR = "invalid multipart/form-data"

-- One part, body[s..e] between two delimiter lines -> record, or nil.
local function parse_part(body, s, e)
  local eoh = find(body, "\r\n\r\n", s, true)
  -- No header lines means no Content-Disposition, which is required.
  if not eoh or eoh + 3 > e or sub(body, s, s + 1) == "\r\n" then return nil end
  local disposition, ctype
  local p = s
  while p < eoh do
    local nl = find(body, "\r\n", p, true)
    local name, value = match(sub(body, p, nl - 1), "^([^:%s]+)%s*:%s*(.-)%s*$")
    if not name then return nil end
    name = lower(name)
    if name == "content-disposition" then
      disposition = value
    elseif name == "content-type" then
      ctype = value
    end
    p = nl + 2
  end
  if not disposition then return nil end
  local kind, params = parse_header(disposition)
  if kind ~= "form-data" or not params.name or params.name == "" then return nil end
  return { name = params.name, filename = params.filename,
           content_type = ctype, body = sub(body, eoh + 4, e) }
end

-- A delimiter is "--boundary" at the start of a line; a part ends at the
-- CRLF before the next one. The closing "--boundary--" is required, so a
-- truncated body never passes as complete. Preamble and epilogue are
-- ignored (RFC 2046). Nothing is stored unless the whole body parses.
local function parse_multipart(boundary, body, arguments, files)
  if type(body) ~= "string" then return nil, MULTIPART_ERR end
  local delim = "--" .. boundary
  local next_delim = "\r\n" .. delim
  local pos = 1
  if sub(body, 1, #delim) ~= delim then
    pos = find(body, next_delim, 1, true)
    if not pos then return nil, MULTIPART_ERR end
    pos = pos + 2
  end
  local parts = {}
  while true do
    local after = pos + #delim
    if sub(body, after, after + 1) == "--" then break end
    -- Transport padding (spaces, tabs) may follow a delimiter.
    local _, eol = find(body, "^[ \t]*\r\n", after)
    if not eol then return nil, MULTIPART_ERR end
    local nd = find(body, next_delim, eol + 1, true)
    local part = nd and parse_part(body, eol + 1, nd - 1)
    if not part then return nil, MULTIPART_ERR end
    parts[#parts + 1] = part
    pos = nd + 2
  end
  for i = 1, #parts do
    local part = parts[i]
    -- A browser sends filename="" for an empty file input; Tornado
    -- treats that as a plain argument.
    if part.filename and part.filename ~= "" then
      if files then
        local list = files[part.name] or {}
        files[part.name] = list
        list[#list + 1] = { filename = part.filename, body = part.body,
          content_type = part.content_type or "application/unknown" }
      end
    else
      local list = arguments[part.name] or {}
      arguments[part.name] = list
      list[#list + 1] = part.body
    end
  end
  return true
end

-- files may be nil when the caller takes no uploads; file parts are dropped.
function _M.parse_body_arguments(content_type, body, arguments, files)
  if type(arguments) ~= "table" then
    argerror(3, "parse_body_arguments", "table", arguments)
  end
  if files ~= nil and type(files) ~= "table" then
    argerror(4, "parse_body_arguments", "table", files)
  end
  if type(content_type) ~= "string" then return true end
  local kind, params = parse_header(content_type)
  if kind == "application/x-www-form-urlencoded" then
    if type(body) == "string" then parse_qs(body, arguments) end
    return true
  elseif kind == "multipart/form-data" then
    local boundary = params.boundary
    if not boundary or boundary == "" then return nil, MULTIPART_ERR end
    return parse_multipart(boundary, body, arguments, files)
  end
  return true
end

------------------------------------------------------------------------------
-- Cookies

local function octal_char(o) return char(tonumber(o, 8)) end

-- Python's _unquote: strip the quotes, then \ooo octal and \c escapes.
local function unquote_cookie(v)
  if #v < 2 or byte(v) ~= 34 or byte(v, -1) ~= 34 then return v end
  v = sub(v, 2, -2)
  if not find(v, "\\", 1, true) then return v end
  return (gsub(gsub(v, "\\([0-3][0-7][0-7])", octal_char), "\\(.)", "%1"))
end

-- A chunk without "=" is a value with an empty name (what browsers do for
-- document.cookie = "x"); a repeated name keeps the last value (Tornado).
function _M.parse_cookie(header)
  local cookies = {}
  if type(header) ~= "string" then return cookies end
  local i, len = 1, #header
  while i <= len do
    local semi = find(header, ";", i, true) or len + 1
    local chunk = sub(header, i, semi - 1)
    local key, val = match(chunk, "^%s*(.-)%s*=%s*(.-)%s*$")
    if not key then key, val = "", match(chunk, "^%s*(.-)%s*$") end
    if key ~= "" or val ~= "" then cookies[key] = unquote_cookie(val) end
    i = semi + 1
  end
  return cookies
end

-- RFC 6265: a token for the name; cookie-octets (no CTL, space, DQUOTE, ",",
-- ";", "\" or non-ASCII) for the value. Anything else could split the header
-- or inject attributes, so it is refused rather than quoted.
local BAD_NAME = "[^!#$%%&'*+%-.^_`|~%w]"
local BAD_VALUE = "[%z\1- \",;\\\127-\255]"
local BAD_ATTR = "[%z\1-\31;\127]"
local SAMESITE = { strict = "Strict", lax = "Lax", none = "None" }

local function cookie_error(what, v)
  error(format("format_cookie: invalid %s %q", what, tostring(v)), 3)
end

function _M.format_cookie(name, value, opts)
  if type(name) ~= "string" or name == "" or find(name, BAD_NAME) then
    cookie_error("cookie name", name)
  end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" or find(value, BAD_VALUE) then
    cookie_error("cookie value", value)
  end
  opts = opts or {}
  local out = { name .. "=" .. value }
  local expires, days = opts.expires, opts.expires_days
  if expires == nil and days ~= nil then
    if type(days) ~= "number" then cookie_error("expires_days", days) end
    expires = os_time() + days * 86400
  end
  if expires ~= nil then
    if type(expires) ~= "number" then cookie_error("expires", expires) end
    out[#out + 1] = "Expires=" .. _M.format_http_date(expires)
  end
  local max_age = opts.max_age
  if max_age ~= nil then
    if type(max_age) ~= "number" then cookie_error("max_age", max_age) end
    out[#out + 1] = format("Max-Age=%d", floor(max_age))
  end
  local domain, path = opts.domain, opts.path
  if path == nil then path = "/" end -- false leaves Path out
  if domain ~= nil then
    if type(domain) ~= "string" or find(domain, BAD_ATTR) then
      cookie_error("domain", domain)
    end
    out[#out + 1] = "Domain=" .. domain
  end
  if path then
    if type(path) ~= "string" or find(path, BAD_ATTR) then
      cookie_error("path", path)
    end
    out[#out + 1] = "Path=" .. path
  end
  if opts.secure then out[#out + 1] = "Secure" end
  if opts.httponly then out[#out + 1] = "HttpOnly" end
  if opts.samesite ~= nil then
    local ss = type(opts.samesite) == "string" and SAMESITE[lower(opts.samesite)]
    if not ss then cookie_error("samesite", opts.samesite) end
    out[#out + 1] = "SameSite=" .. ss
  end
  return concat(out, "; ")
end

------------------------------------------------------------------------------
-- Dates. Day and month names are spelled out: os.date("%a %b") follows the
-- C locale, which an embedding program may have changed.

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local MONTH_DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local month_index = {}
for i, m in ipairs(MONTHS) do month_index[lower(m)] = i end

-- Every response carries a Date, and within one second they are all equal.
local last_time, last_date

function _M.format_http_date(t)
  if t == nil then
    t = os_time()
  elseif type(t) ~= "number" then
    argerror(1, "format_http_date", "number", t)
  end
  t = floor(t)
  if t ~= last_time then
    local d = os_date("!*t", t)
    last_date = format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[d.wday],
                       d.day, MONTHS[d.month], d.year, d.hour, d.min, d.sec)
    last_time = t
  end
  return last_date
end

-- Computed from the civil date (H. Hinnant's days_from_civil) instead of
-- os.time, which would apply the local time zone.
local function to_epoch(y, mon, d, h, mi, s)
  local m = month_index[lower(mon)]
  y, d, h, mi, s = tonumber(y), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if not m or d < 1 or d > MONTH_DAYS[m] or h > 23 or mi > 59 or s > 60
     or (m == 2 and d == 29 and (y % 4 ~= 0 or (y % 100 == 0 and y % 400 ~= 0))) then
    return nil
  end
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
  return days * 86400 + h * 3600 + mi * 60 + s
end

-- The three formats RFC 7231 7.1.1.1 requires. Old browsers append
-- "; length=N" to If-Modified-Since; it is cut off.
function _M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  s = match(s, "^%s*([^;]-)%s*$") or match(s, "^%s*([^;]-)%s*;")
  if not s then return nil end
  local d, mon, y, h, mi, sec = match(s,
    "^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if d then return to_epoch(y, mon, d, h, mi, sec) end
  d, mon, y, h, mi, sec = match(s,
    "^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if d then -- RFC 850 two-digit year
    y = tonumber(y)
    return to_epoch(y + (y < 70 and 2000 or 1900), mon, d, h, mi, sec)
  end
  mon, d, h, mi, sec, y = match(s,
    "^%a%a%a (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  if mon then return to_epoch(y, mon, d, h, mi, sec) end
  return nil
end

------------------------------------------------------------------------------
-- Signed values: Tornado's create_signed_value / decode_signed_value, v2.

-- Looks at every byte whatever the inputs, so the time taken says nothing
-- about how long a forged prefix matched. Lengths are not secret.
function _M.constant_time_compare(a, b)
  if type(a) ~= "string" then argerror(1, "constant_time_compare", "string", a) end
  if type(b) ~= "string" then argerror(2, "constant_time_compare", "string", b) end
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bor(diff, bxor(byte(a, i), byte(b, i))) end
  return diff == 0
end
local constant_time_compare = _M.constant_time_compare

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64_enc, b64_dec, hex_byte = {}, {}, {}
for i = 1, 64 do
  b64_enc[i - 1], b64_dec[byte(B64, i)] = sub(B64, i, i), i - 1
end
for b = 0, 255 do hex_byte[char(b)] = format("%02x", b) end

local function b64encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = lshift(a, 16) + lshift(b or 0, 8) + (c or 0)
    out[#out + 1] = b64_enc[rshift(v, 18)] .. b64_enc[band(rshift(v, 12), 63)]
            .. (b and b64_enc[band(rshift(v, 6), 63)] or "=")
            .. (c and b64_enc[band(v, 63)] or "=")
  end
  return concat(out)
end

-- Strict: standard alphabet, length a multiple of 4, "=" only as padding,
-- unused bits zero (one canonical encoding per value). nil otherwise.
local function b64decode(s)
  if #s % 4 ~= 0 or not find(s, "^[%w+/]*=?=?$") then return nil end
  local out = {}
  for i = 1, #s, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    a, b, c, d = b64_dec[a], b64_dec[b], b64_dec[c], b64_dec[d]
    if not b or (not c and d) then return nil end -- "A===", "AB=C"
    local v = lshift(a, 18) + lshift(b, 12) + lshift(c or 0, 6) + (d or 0)
    if not c then
      if band(v, 0xFFFF) ~= 0 then return nil end
      out[#out + 1] = char(rshift(v, 16))
    elseif not d then
      if band(v, 0xFF) ~= 0 then return nil end
      out[#out + 1] = char(rshift(v, 16), band(rshift(v, 8), 255))
    else
      out[#out + 1] = char(rshift(v, 16), band(rshift(v, 8), 255), band(v, 255))
    end
  end
  return concat(out)
end
_M._b64encode, _M._b64decode = b64encode, b64decode

-- hmac_fn and now are arguments n and n + 1.
local function check_signing(fname, secret, name, hmac_fn, now, n)
  if type(secret) ~= "string" or secret == "" then
    argerror(1, fname, "non-empty string", secret, 4)
  end
  if type(name) ~= "string" then argerror(2, fname, "string", name, 4) end
  if type(hmac_fn) ~= "function" then argerror(n, fname, "function", hmac_fn, 4) end
  if now ~= nil and type(now) ~= "number" then argerror(n + 1, fname, "number", now, 4) end
end

local function signature(secret, hmac_fn, msg)
  local mac = hmac_fn(secret, msg)
  if type(mac) ~= "string" then error("hmac_fn must return a string", 3) end
  return (gsub(mac, ".", hex_byte))
end

-- "2|1:0|<n>:<timestamp>|<n>:<name>|<n>:<b64 value>|<hex hmac>": every field
-- is length-prefixed, so no bytes can move from one field to the next.
function _M.create_signed_value(secret, name, value, hmac_fn, now)
  check_signing("create_signed_value", secret, name, hmac_fn, now, 4)
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then argerror(3, "create_signed_value", "string", value) end
  local ts = format("%d", floor(now or os_time()))
  value = b64encode(value)
  local to_sign = format("2|1:0|%d:%s|%d:%s|%d:%s|", #ts, ts, #name, name, #value, value)
  return to_sign .. signature(secret, hmac_fn, to_sign)
end

-- "<n>:<n bytes>|" at pos -> the bytes and the position after "|", or nil.
local function consume_field(s, pos)
  local colon = find(s, ":", pos, true)
  if not colon or colon == pos or colon - pos > 9 then return nil end
  local digits = sub(s, pos, colon - 1)
  if find(digits, "%D") then return nil end
  local e = colon + tonumber(digits)
  if byte(s, e + 1) ~= 124 then return nil end -- "|"
  return sub(s, colon + 1, e), e + 2
end

local MAX_FUTURE = 31 * 86400

function _M.decode_signed_value(secret, name, signed, max_age_days, hmac_fn, now)
  check_signing("decode_signed_value", secret, name, hmac_fn, now, 5)
  if max_age_days ~= nil and type(max_age_days) ~= "number" then
    argerror(4, "decode_signed_value", "number", max_age_days)
  end
  if type(signed) ~= "string" or sub(signed, 1, 2) ~= "2|" then return nil end
  -- The key version is covered by the signature but otherwise unused.
  local key_version, pos = consume_field(signed, 3)
  local ts, name_field, value_field
  if key_version then ts, pos = consume_field(signed, pos) end
  if ts then name_field, pos = consume_field(signed, pos) end
  if name_field then value_field, pos = consume_field(signed, pos) end
  if not value_field then return nil end

  local expected = signature(secret, hmac_fn, sub(signed, 1, pos - 1))
  if not constant_time_compare(sub(signed, pos), expected) then return nil end
  if name_field ~= name or ts == "" or find(ts, "%D") then return nil end
  local t = tonumber(ts)
  now = now or os_time()
  if t < now - (max_age_days or 31) * 86400 or t > now + MAX_FUTURE then return nil end
  return b64decode(value_field)
end

------------------------------------------------------------------------------
-- URLs

local function append_arg(out, name, value)
  if type(value) == "table" then
    for i = 1, #value do append_arg(out, name, value[i]) end
  else
    out[#out + 1] = url_escape(tostring(name)) .. "=" .. url_escape(tostring(value))
  end
end

-- args: { name = value } (names sorted so the URL is reproducible; a value
-- may be an array for a repeated name), or an array of {name, value} pairs
-- kept in order. A "#fragment" stays at the end.
function _M.url_concat(url, args)
  if type(url) ~= "string" then argerror(1, "url_concat", "string", url) end
  if args == nil then return url end
  if type(args) ~= "table" then argerror(2, "url_concat", "table", args) end
  local out = {}
  if args[1] ~= nil then
    for _, pair in ipairs(args) do
      if type(pair) ~= "table" or pair[1] == nil or pair[2] == nil then
        argerror(2, "url_concat", "array of {name, value}", pair)
      end
      append_arg(out, pair[1], pair[2])
    end
  else
    local names = {}
    for k in pairs(args) do
      if type(k) ~= "string" then argerror(2, "url_concat", "string keys", k) end
      names[#names + 1] = k
    end
    sort(names)
    for i = 1, #names do append_arg(out, names[i], args[names[i]]) end
  end
  if #out == 0 then return url end
  local base, frag = url, ""
  local hash = find(url, "#", 1, true)
  if hash then base, frag = sub(url, 1, hash - 1), sub(url, hash) end
  local sep = "&"
  if not find(base, "?", 1, true) then
    sep = "?"
  elseif find(base, "[?&]$") then
    sep = ""
  end
  return base .. sep .. concat(out, "&") .. frag
end

-- Adds `value` under `name` in a plain table of response headers, where a
-- repeated header holds a list of its values (the form the core writes):
-- shared by RequestHandler:add_header and the proxy's header copy.
function _M._add_value(headers, name, value)
  local old = headers[name]
  if old == nil then
    headers[name] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  else
    headers[name] = { old, value }
  end
end

return _M
