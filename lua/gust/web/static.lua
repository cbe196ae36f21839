-- gust.web.static: StaticFileHandler, files under a root directory, with
-- ETag, Last-Modified, conditional GET and single byte ranges (Tornado's
-- StaticFileHandler), exposed as web.StaticFileHandler. Bodies go out
-- through req:send_file, so a large file never passes through Lua memory.
--
-- The path is checked lexically (no NUL, no "..", not absolute, and the
-- joined path must stay under the root) before the file system is asked
-- anything. Then the file it names, symlinks resolved (realpath), must be
-- under the root's own resolved path: a symlink that stays inside the root
-- is followed, one that leads out of it is a 403 -- unless the
-- application's settings have static_follow_symlinks = true, for roots
-- made of links to elsewhere on purpose.

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, error, pcall = type, tostring, tonumber, error, pcall
local find, format, lower, match, sub = string.find, string.format, string.lower,
  string.match, string.sub
local concat = table.concat
local floor = math.floor
local io_open, getenv = io.open, os.getenv

local ffi = require "ffi"

local core = require "gust.core"
local httputil = require "gust.httputil"
local log = require "gust.log"
local errors = require "gust.web.errors"
local handler = require "gust.web.handler"

local HTTPError = errors.HTTPError

local lfs
do
  local ok, mod = pcall(require, "lfs")
  if ok then lfs = mod end
end

local MIME = {
  html = "text/html", htm = "text/html", css = "text/css", txt = "text/plain",
  js = "application/javascript", mjs = "application/javascript",
  json = "application/json", map = "application/json", xml = "application/xml",
  csv = "text/csv", md = "text/markdown", svg = "image/svg+xml",
  png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", avif = "image/avif", ico = "image/x-icon", bmp = "image/bmp",
  pdf = "application/pdf", zip = "application/zip", gz = "application/gzip",
  tar = "application/x-tar", wasm = "application/wasm",
  woff = "font/woff", woff2 = "font/woff2", ttf = "font/ttf", otf = "font/otf",
  eot = "application/vnd.ms-fontobject",
  mp3 = "audio/mpeg", ogg = "audio/ogg", wav = "audio/wav",
  mp4 = "video/mp4", webm = "video/webm",
}
_M.MIME = MIME

-- kind ("file", "directory", ...), size, mtime; nil when it does not exist.
-- Without lfs there is no mtime, so no Last-Modified either.
local function stat(path)
  if lfs then
    local a = lfs.attributes(path)
    if not a then return nil end
    return a.mode, a.size, a.modification
  end
  local f = io_open(path, "rb")
  if not f then return nil end
  local data, err = f:read(0)
  if data == nil and err then -- EISDIR; a plain empty file gives nil, nil
    f:close()
    return "directory", 0, nil
  end
  local size = f:seek("end")
  f:close()
  return "file", size, nil
end
_M._stat = stat

local function cwd()
  return (lfs and lfs.currentdir()) or getenv("PWD") or "."
end

-- Lexical normalisation of an absolute path: "." and empty segments go,
-- ".." removes the previous segment (never above "/").
local function normalize(path)
  local out = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      out[#out] = nil
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  return "/" .. concat(out, "/")
end

-- The canonical absolute path of an existing path (realpath(3)), or nil.
-- One buffer serves every call: nothing yields in between.
pcall(ffi.cdef, "char *realpath(const char *path, char *resolved_path);")
local PATH_MAX = 4096
local real_buf = ffi.new("char[?]", PATH_MAX + 1)

local function realpath(path)
  local r = ffi.C.realpath(path, real_buf)
  if r == nil then return nil end
  return ffi.string(r)
end
_M._realpath = realpath

local root_cache = {}
local function abspath(root)
  local abs = root_cache[root]
  if abs == nil then
    abs = root
    if sub(abs, 1, 1) ~= "/" then abs = cwd() .. "/" .. abs end
    abs = normalize(abs)
    root_cache[root] = abs
  end
  return abs
end

-- "bytes=a-b" -> true, a, b + 1; "bytes=a-" -> true, a, nil;
-- "bytes=-n" -> true, -n, nil. Anything else, including several ranges,
-- -> nil: the whole file is sent (Tornado's _parse_request_range).
local function parse_range(header)
  local unit, value = match(header, "^%s*([^=]-)%s*=%s*(.-)%s*$")
  if unit ~= "bytes" then return nil end
  local s, e = match(value, "^(%d*)%s*%-%s*(%d*)$")
  if not s or (s == "" and e == "") then return nil end
  local start, stop = tonumber(s), tonumber(e)
  if stop ~= nil then
    if start == nil then
      if stop ~= 0 then start, stop = -stop, nil end
    else
      stop = stop + 1
    end
  end
  return true, start, stop
end
_M._parse_range = parse_range

local StaticFileHandler = handler.RequestHandler:extend()
StaticFileHandler.__name = "gust.web.StaticFileHandler"
StaticFileHandler.CACHE_MAX_AGE = 86400 * 365 * 10
StaticFileHandler._static_hashes = {}

-- kwargs: path (the root), default_filename (served for directories).
function StaticFileHandler:initialize(kwargs)
  if type(kwargs.path) ~= "string" then
    error("StaticFileHandler needs a 'path' string in its route kwargs", 2)
  end
  self.root = kwargs.path
  self.default_filename = kwargs.default_filename
end

function StaticFileHandler:head(path)
  return self:get(path)
end

function StaticFileHandler:get(path)
  self.path = self:parse_url_path(path or "")
  local absolute_path = self:get_absolute_path(self.root, self.path)
  absolute_path = self:validate_absolute_path(self.root, absolute_path)
  if absolute_path == nil then return end -- redirected
  self.absolute_path = absolute_path
  self:set_headers()
  if self:should_return_304() then
    self:set_status(304)
    return
  end
  local size = self._size
  local start, stop
  local range = self.request.headers["Range"]
  if range then
    local ok
    ok, start, stop = parse_range(range)
    if ok then
      if start ~= nil and start < 0 then
        start = start + size
        if start < 0 then start = 0 end
      end
      -- RFC 9110 14.1.2: unsatisfiable only when the first byte is
      -- past the end, or for a zero-length suffix.
      if (start ~= nil and (start >= size or (stop ~= nil and start >= stop)))
         or stop == 0 then
        self:set_status(416)
        self:set_header("Content-Type", "text/plain")
        self:set_header("Content-Range", format("bytes */%d", size))
        return
      end
      if stop ~= nil and stop > size then stop = size end
      if size ~= (stop or size) - (start or 0) then
        self:set_status(206)
        self:set_header("Content-Range",
          format("bytes %d-%d/%d", start or 0, (stop or size) - 1, size))
      end
    end
  end
  local offset = start or 0
  -- HEAD goes the same way: the core sends the headers only.
  return self:_finish_with_file(absolute_path, offset, (stop or size) - offset)
end

function StaticFileHandler.parse_url_path(_, url_path)
  return url_path
end

-- The lexically normalised root/path; validate_absolute_path checks it.
function StaticFileHandler.get_absolute_path(_, root, path)
  return normalize(abspath(root) .. "/" .. path)
end

-- Raises 403 when `path` (which exists) resolves to somewhere outside the
-- root's resolved path, unless the app follows symlinks. The root is
-- resolved on every request: a deployment may point it somewhere new.
local function check_resolved(self, root, path, rel)
  if self.settings.static_follow_symlinks then return end
  local real, real_root = realpath(path), realpath(abspath(root))
  if real == nil or real_root == nil then error(HTTPError(404, "%s not found", rel), 0) end
  local prefix = real_root == "/" and "/" or real_root .. "/"
  if sub(real .. "/", 1, #prefix) ~= prefix then
    error(HTTPError(403, "%s is not in root static directory", rel), 0)
  end
end

-- -> the file to serve, or nil after redirecting a directory to its
-- "/" form. Raises 403 outside the root (lexically, or once symlinks are
-- resolved) or for a non-file, 404 when missing.
function StaticFileHandler:validate_absolute_path(root, absolute_path)
  local rel = self.path
  if find(rel, "%z") or sub(rel, 1, 1) == "/" or find("/" .. rel .. "/", "/%.%./") then
    error(HTTPError(403, "%s is not in root static directory", rel), 0)
  end
  local root_abs = abspath(root)
  local prefix = root_abs == "/" and "/" or root_abs .. "/"
  if sub(absolute_path .. "/", 1, #prefix) ~= prefix then
    error(HTTPError(403, "%s is not in root static directory", rel), 0)
  end
  local kind, size, mtime = stat(absolute_path)
  if kind ~= nil then check_resolved(self, root, absolute_path, rel) end
  if kind == "directory" and self.default_filename then
    local rpath = self.request.path
    if sub(rpath, -1) ~= "/" then
      if sub(rpath, 1, 2) == "//" then
        error(HTTPError(403, "cannot redirect path with two initial slashes"), 0)
      end
      self:redirect(rpath .. "/", true)
      return nil
    end
    absolute_path = absolute_path .. "/" .. self.default_filename
    kind, size, mtime = stat(absolute_path)
    if kind ~= nil then check_resolved(self, root, absolute_path, rel) end
  end
  if kind == nil then error(HTTPError(404, "%s not found", rel), 0) end
  if kind ~= "file" then error(HTTPError(403, "%s is not a file", rel), 0) end
  self._size, self.modified = size, mtime
  return absolute_path
end

function StaticFileHandler:set_headers()
  self:set_header("Accept-Ranges", "bytes")
  local etag = self:compute_etag()
  if etag then self:set_header("Etag", etag) end
  if self.modified then
    self:set_header("Last-Modified", httputil.format_http_date(self.modified))
  end
  local ctype = self:get_content_type()
  if ctype then self:set_header("Content-Type", ctype) end
  local cache_time = self:get_cache_time(self.path, self.modified, ctype)
  if cache_time > 0 then
    self:set_header("Expires", httputil.format_http_date(floor(core.time()) + cache_time))
    self:set_header("Cache-Control", "max-age=" .. tostring(cache_time))
  end
  self:set_extra_headers(self.path)
end

-- Size and mtime, as nginx does: cheap, and it changes when the file
-- does (Tornado hashes the content, which would mean reading it).
function StaticFileHandler:compute_etag()
  return format('"%x-%x"', self._size, self.modified or 0)
end

function StaticFileHandler:should_return_304()
  local h = self.request.headers
  if h["If-None-Match"] then return self:check_etag_header() end
  local ims = h["If-Modified-Since"]
  if ims and self.modified then
    local t = httputil.parse_http_date(ims)
    if t and t >= self.modified then return true end
  end
  return false
end

function StaticFileHandler:get_content_type()
  local ext = match(self.absolute_path, "%.([^./]+)$")
  return ext and MIME[lower(ext)] or "application/octet-stream"
end

-- Versioned URLs (static_url's ?v=) may be cached for good.
function StaticFileHandler:get_cache_time()
  if self.request.query_arguments["v"] then return self.CACHE_MAX_AGE end
  return 0
end

StaticFileHandler.set_extra_headers = function() end

-- Class-level helpers for static_url(): prefix .. path .. "?v=<hash>".
function StaticFileHandler.make_static_url(cls, settings, path, include_version)
  local url = (settings.static_url_prefix or "/static/") .. path
  if include_version == false then return url end
  local version = cls:get_version(settings, path)
  if not version then return url end
  return url .. "?v=" .. version
end

function StaticFileHandler.get_version(cls, settings, path)
  local abs = cls:get_absolute_path(settings.static_path, path)
  if settings.static_hash_cache == false then return cls:get_content_version(abs) end
  local hashes = cls._static_hashes
  local v = hashes[abs]
  if v == nil then
    v = cls:get_content_version(abs) or false
    hashes[abs] = v
  end
  return v or nil
end

-- First 8 hex digits of the SHA-1 of the file, or nil if unreadable.
function StaticFileHandler.get_content_version(_, abs)
  local f = io_open(abs, "rb")
  if not f then
    log.error("Could not open static file %s", log.escape(abs))
    return nil
  end
  local data = f:read("*a")
  f:close()
  if data == nil then
    log.error("Could not read static file %s", log.escape(abs))
    return nil
  end
  return sub(core.hex(core.sha1(data)), 1, 8)
end

function StaticFileHandler.reset(cls)
  cls._static_hashes = {}
end

_M.StaticFileHandler = StaticFileHandler

return _M
