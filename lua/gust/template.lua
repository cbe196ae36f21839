-- gust.template: Tornado's template language with Lua expressions
-- (DESIGN §4.7). A template is parsed into a tree, the tree is turned into
-- the source of one Lua function, and that function is compiled once and
-- cached; rendering runs it against the caller's variables.
--
--   local template = require "gust.template"
--   local t = template.Template("<b>{{ name }}</b>", { name = "inline" })
--   t:generate({ name = "<me>" })               --> "<b>&lt;me&gt;</b>"
--
--   local loader = template.Loader("templates", { autoescape = ..., whitespace = ... })
--   loader:load("page.html"):generate(vars)      -- cached per name
--   loader:reset()                               -- forget every compiled template
--
-- The template is parsed (gust/template/parser.lua), turned into Lua
-- source (gust/template/codegen.lua), compiled and cached here.
--
-- Syntax (Tornado's, with Lua inside the tags):
--   {{ expr }}                   output, escaped by the file's autoescape function
--   {% raw expr %}               output, not escaped
--   {% if c %} {% elseif c %} {% else %} {% end %}     ({% elif %} is accepted too)
--   {% for x in expr %}          expr: an iterator (pairs(t), ipairs(t), ...) or a
--                                plain table, whose array part is walked by value
--   {% for i = 1, n %}, {% while c %}, {% break %}, {% continue %}
--   {% set x = expr %}           x is a local of the whole render (function scope,
--                                as in Tornado), starting from the namespace's x
--   {% include "f" %}            f inlined here, sharing the namespace and locals
--   {% extends "base" %} + {% block name %}...{% end %}  child blocks replace the
--                                parent's; only the blocks of a child are used
--   {% apply fn %}...{% end %}   output of the body passed through fn
--   {# comment #}, {% comment anything %}
--   {% autoescape nil %}         no escaping in this file ({% autoescape fname %}
--                                names the escaping function)
--   {% whitespace all|single|oneline %}
--   {{! {%! {#!                  the literal text {{ {% {#
--
-- Expressions see the namespace passed to generate(), then the helpers
-- (escape, xhtml_escape, url_escape, json_encode, squeeze, ...) and a safe,
-- read-only subset of the standard library. Nothing a template does reaches
-- _G: {% set %} makes locals, and any other assignment lands in a table
-- made for that one render.
--
-- Errors name the template and its line: "page.html:3: Missing end block %}"
-- for syntax errors (raised by Template() / Loader:load()), and the same
-- prefix for errors raised while rendering, found by mapping the line of
-- the generated Lua back through a line table. Error values that are not
-- strings (web.HTTPError) pass through unchanged.

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, error = type, tostring, tonumber, error
local pairs, next, select = pairs, next, select
local setmetatable, getmetatable = setmetatable, getmetatable
local xpcall, setfenv = xpcall, setfenv
local loadstring = loadstring or load
local byte, sub, find, gsub, match = string.byte, string.sub, string.find, string.gsub,
  string.match
local concat = table.concat
local getinfo = debug.getinfo
local io_open = io.open

local escape = require "gust.escape"
local parser = require "gust.template.parser"
local codegen = require "gust.template.codegen"

local parse, KEYWORDS, WHITESPACE_MODES = parser.parse, parser.KEYWORDS, parser.WHITESPACE_MODES
local generate_source = codegen.generate_source

-- As Tornado's filter_whitespace.
_M.filter_whitespace = parser.filter_whitespace

------------------------------------------------------------------------------
-- What expressions can read besides the namespace.

local function read_only(t, name)
  return setmetatable({}, {
    __index = t,
    __newindex = function(_, k)
      error("cannot set " .. name .. "." .. tostring(k) .. " from a template", 2)
    end,
    __metatable = false,
  })
end

local BASE = {
  -- Tornado's template namespace
  escape = escape.xhtml_escape,
  xhtml_escape = escape.xhtml_escape,
  xhtml_unescape = escape.xhtml_unescape,
  url_escape = escape.url_escape,
  url_unescape = escape.url_unescape,
  json_encode = escape.json_encode,
  json_decode = escape.json_decode,
  squeeze = escape.squeeze,
  -- the standard library a template has any business with
  string = read_only(string, "string"),
  table = read_only(table, "table"),
  math = read_only(math, "math"),
  os = read_only({ date = os.date, time = os.time, clock = os.clock,
                   difftime = os.difftime }, "os"),
  pairs = pairs, ipairs = ipairs, next = next, select = select,
  unpack = unpack or table.unpack, -- luacheck: ignore 143
  tostring = tostring, tonumber = tonumber, type = type,
  error = error, assert = assert, pcall = pcall, rawequal = rawequal,
}

-- A render's environment is a copy of the namespace with this metatable.
local ENV_MT = { __index = BASE }
-- What a compiled chunk's environment is between renders.
local IDLE_ENV = setmetatable({}, ENV_MT)

------------------------------------------------------------------------------
-- Helpers the generated code calls (passed in as upvalues).

-- The text of an output value: nil renders as nothing.
local function to_str(v)
  if type(v) == "string" then return v end
  if v == nil then return "" end
  return tostring(v)
end

-- {% for names in explist %}: an iterator triple goes through unchanged; a
-- plain table is walked by value over its array part, as a Python list is.
local function for_iter(f, s, c)
  local t = type(f)
  if t == "function" then return f, s, c end
  if t == "table" then
    local mt = getmetatable(f)
    if type(mt) == "table" and mt.__call then return f, s, c end
    local i = 0
    return function()
      i = i + 1
      return f[i]
    end
  end
  error("cannot iterate over a " .. t .. " value", 2)
end

------------------------------------------------------------------------------
-- Template

local Template = { __name = "gust.template.Template" }
Template.__index = Template

function Template.__tostring(self)
  return "<" .. self.__name .. " " .. self.name .. ">"
end

local function check_whitespace(ws, fname, level)
  if ws ~= nil and not WHITESPACE_MODES[ws] then
    error("bad option whitespace to '" .. fname .. "' (all, single or oneline expected, got "
          .. tostring(ws) .. ")", level + 1)
  end
end

local function check_autoescape(ae, fname, level)
  if ae == nil or ae == false or type(ae) == "function" then return end
  if type(ae) ~= "string" or not match(ae, "^[%a_][%w_%.]*$") or KEYWORDS[ae] then
    error("bad option autoescape to '" .. fname .. "' (function, function name or false"
          .. " expected, got " .. tostring(ae) .. ")", level + 1)
  end
end

local function default_whitespace(name)
  if sub(name, -5) == ".html" or sub(name, -3) == ".js" then return "single" end
  return "all"
end

-- Parses; compiling is separate so that a Loader can cache a template
-- before the templates it includes or extends are looked up.
local function new_template(cls, source, name, loader, autoescape, whitespace)
  if autoescape == nil then
    if loader and loader.autoescape ~= nil then
      autoescape = loader.autoescape
    else
      autoescape = "xhtml_escape"
    end
  end
  whitespace = whitespace or (loader and loader.whitespace) or default_whitespace(name)
  local self = setmetatable({
    name = name, loader = loader, autoescape = autoescape, whitespace = whitespace,
  }, cls)
  self.file = parse(source, { name = name, autoescape = autoescape, whitespace = whitespace })
  return self
end

-- Generates and loads the Lua code; raises "<name>:<line>: <msg>".
function Template:_compile()
  local source, map_file, map_line, fns = generate_source(self)
  local chunkname = "=" .. self.name
  local chunk, err = loadstring(source, chunkname)
  if not chunk then
    local n, msg = match(err, "^.-:(%d+): (.*)$")
    n = tonumber(n)
    if n and map_file[n] then
      err = map_file[n] .. ":" .. map_line[n] .. ": " .. msg
    end
    error(err, 0)
  end
  setfenv(chunk, IDLE_ENV)
  self.code = source
  self._chunk = chunk
  self._fns = fns
  -- Message handler for renders: finds the innermost frame of this
  -- template's code and puts its template file and line in front.
  self._on_error = function(e)
    if type(e) ~= "string" then return e end
    for level = 2, 200 do
      local info = getinfo(level, "Sl")
      if not info then break end
      if info.source == chunkname then
        local n = info.currentline
        local file = map_file[n]
        if not file then break end
        local prefix = info.short_src .. ":" .. n .. ": "
        if sub(e, 1, #prefix) == prefix then e = sub(e, #prefix + 1) end
        return file .. ":" .. map_line[n] .. ": " .. e
      end
    end
    return e
  end
  return self
end

-- Renders with `namespace` (a table, not modified) -> string.
function Template:generate(namespace)
  if namespace ~= nil and type(namespace) ~= "table" then
    error("bad argument #1 to 'generate' (table expected, got " .. type(namespace) .. ")", 2)
  end
  if not self._chunk then self:_compile() end
  local env = {}
  if namespace then
    for k, v in pairs(namespace) do env[k] = v end
  end
  setmetatable(env, ENV_MT)
  -- A fresh render function per call: its environment is fixed when it is
  -- made, so renders that yield in between cannot see each other's.
  local chunk = self._chunk
  setfenv(chunk, env)
  local render = chunk(to_str, for_iter, concat, self._fns)
  setfenv(chunk, IDLE_ENV)
  local ok, res = xpcall(render, self._on_error)
  if not ok then error(res, 0) end
  return res
end

setmetatable(Template, {
  -- Template(source, { name=, loader=, autoescape=, whitespace= })
  __call = function(cls, source, opts)
    if type(source) ~= "string" then
      error("bad argument #1 to 'Template' (string expected, got " .. type(source) .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #2 to 'Template' (table expected, got " .. type(opts) .. ")", 2)
    end
    opts = opts or {}
    local name = opts.name or "<string>"
    if type(name) ~= "string" then
      error("bad option name to 'Template' (string expected, got " .. type(name) .. ")", 2)
    end
    if opts.loader ~= nil and type(opts.loader) ~= "table" then
      error("bad option loader to 'Template' (table expected, got "
            .. type(opts.loader) .. ")", 2)
    end
    check_autoescape(opts.autoescape, "Template", 2)
    check_whitespace(opts.whitespace, "Template", 2)
    local self = new_template(cls, source, name, opts.loader, opts.autoescape, opts.whitespace)
    return self:_compile()
  end,
})
_M.Template = Template

------------------------------------------------------------------------------
-- Loader

local Loader = { __name = "gust.template.Loader" }
Loader.__index = Loader

function Loader.__tostring(self)
  return "<" .. self.__name .. " " .. self.root .. ">"
end

-- `name` relative to the root, normalised; relative to the directory of
-- `parent` (a template name) when given, as Tornado's resolve_path. Names
-- that are absolute or climb out of the root are refused: nil, err.
function Loader:resolve_path(name, parent) -- luacheck: ignore 212/self
  if find(name, "\0", 1, true) then return nil, "bad template name" end
  if byte(name) == 47 then -- "/"
    return nil, "template name '" .. name .. "' is absolute"
  end
  local full = name
  if parent and byte(parent) ~= 60 then -- not "<string>"
    local dir = match(parent, "^(.*)/[^/]*$")
    if dir then full = dir .. "/" .. name end
  end
  local parts = {}
  for part in gsub(full, "/+$", ""):gmatch("[^/]+") do
    if part == ".." then
      if #parts == 0 then
        return nil, "template name '" .. name .. "' is outside the template root"
      end
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  if #parts == 0 then return nil, "bad template name '" .. name .. "'" end
  return concat(parts, "/")
end

-- The cached, parsed (not necessarily compiled) template, or nil, err when
-- the name is refused or the file cannot be read. Syntax errors raise.
function Loader:_get(name, parent)
  local path, err = self:resolve_path(name, parent)
  if not path then return nil, err end
  local t = self.templates[path]
  if t then return t end
  local f, oerr = io_open(self.root .. "/" .. path, "rb")
  if not f then return nil, "cannot open template '" .. path .. "': " .. tostring(oerr) end
  local source, rerr = f:read("*a")
  f:close()
  if not source then return nil, "cannot read template '" .. path .. "': " .. tostring(rerr) end
  t = new_template(Template, source, path, self)
  self.templates[path] = t
  return t
end

-- The compiled Template for `name` (relative to the root), cached: later
-- calls return the same object until reset().
function Loader:load(name, parent)
  if type(name) ~= "string" then
    error("bad argument #1 to 'load' (string expected, got " .. type(name) .. ")", 2)
  end
  local t, err = self:_get(name, parent)
  if not t then error(err, 2) end
  if not t._chunk then t:_compile() end
  return t
end

-- Forgets every template, so the next load reads the files again.
function Loader:reset()
  self.templates = {}
end

setmetatable(Loader, {
  -- Loader(root_dir, { autoescape=, whitespace= })
  __call = function(cls, root, opts)
    if type(root) ~= "string" or root == "" then
      error("bad argument #1 to 'Loader' (directory expected, got " .. tostring(root) .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #2 to 'Loader' (table expected, got " .. type(opts) .. ")", 2)
    end
    opts = opts or {}
    check_autoescape(opts.autoescape, "Loader", 2)
    check_whitespace(opts.whitespace, "Loader", 2)
    if root ~= "/" then root = gsub(root, "/+$", "") end
    return setmetatable({
      root = root,
      autoescape = opts.autoescape,
      whitespace = opts.whitespace,
      templates = {},
    }, cls)
  end,
})
_M.Loader = Loader

return _M
