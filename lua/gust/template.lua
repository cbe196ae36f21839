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
local byte, char, sub, find, gsub, match, format =
  string.byte, string.char, string.sub, string.find, string.gsub, string.match, string.format
local concat = table.concat
local getinfo = debug.getinfo
local io_open = io.open

local escape = require "gust.escape"

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
-- Parsing

local WHITESPACE_MODES = { all = true, single = true, oneline = true }

-- As Tornado's filter_whitespace.
local function filter_whitespace(mode, text)
  if mode == "single" then
    text = gsub(text, "[\t ]+", " ")
    text = gsub(text, "%s*\n%s*", "\n")
  elseif mode == "oneline" then
    text = gsub(text, "%s+", " ")
  elseif mode ~= "all" then
    error("invalid whitespace mode '" .. tostring(mode) .. "'", 2)
  end
  return text
end
_M.filter_whitespace = filter_whitespace

local KEYWORDS = {}
for w in ("and break do else elseif end false for function goto if in local nil not "
          .. "or repeat return then true until while"):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function newlines(s)
  local n, p = 0, find(s, "\n", 1, true)
  while p do
    n = n + 1
    p = find(s, "\n", p + 1, true)
  end
  return n
end

-- s without surrounding whitespace, and the number of lines its start is
-- below the start of s.
local function trim(s)
  local lead, body = match(s, "^(%s*)(.-)%s*$")
  return body, newlines(lead)
end

local function unquote(s)
  return match(s, '^"(.*)"$') or match(s, "^'(.*)'$") or s
end

-- The names `lhs` assigns when {% set %} is a plain `a, b = ...`, else nil.
local function set_names(code)
  local lhs, rhs = match(code, "^([%w_,%s]+)=(.*)$")
  if not lhs or byte(rhs) == 61 then return nil end -- "=="
  local names = {}
  for part in (lhs .. ","):gmatch("([^,]*),") do
    local name = match(part, "^%s*([%a_][%w_]*)%s*$")
    if not name or KEYWORDS[name] then return nil end
    names[#names + 1] = name
  end
  return names
end

local BLOCK_OPS = { ["if"] = true, ["for"] = true, ["while"] = true, block = true, apply = true }
local MISSING = {
  ["if"] = "condition", ["while"] = "condition", ["for"] = "loop clause",
  block = "name", apply = "function", set = "statement", raw = "expression",
  include = "file path", extends = "file path", autoescape = "function name (or nil)",
  whitespace = "mode",
}

-- Parses `src` into file.body. Nodes: { kind, line, file, ... }; kinds text,
-- expr, set, if/for/while/block/apply (with body and end_line), elseif,
-- else, break, continue, include, extends.
local function parse(src, file)
  local pos, line, len = 1, 1, #src
  local ws = file.whitespace
  local name = file.name

  local function fail(at, msg) error(name .. ":" .. at .. ": " .. msg, 0) end

  local function add_text(body, s, at)
    if ws ~= "all" and not find(s, "<pre>", 1, true) then s = filter_whitespace(ws, s) end
    if s ~= "" then body[#body + 1] = { kind = "text", value = s, line = at, file = file } end
  end

  local function directive(body, contents, at, in_block, loop)
    local op, rest = match(contents, "^([%w_]+)(.*)$")
    if not op then fail(at, "unknown directive '" .. contents .. "'") end
    local suffix, down = trim(rest)
    local sline = at + down
    local function need()
      if suffix == "" then fail(at, op .. " missing " .. MISSING[op]) end
    end

    if op == "end" then
      if not in_block then fail(at, "Extra {% end %} block") end
      in_block.end_line = at
      return true
    elseif op == "else" or op == "elseif" or op == "elif" then
      if not in_block then fail(at, op .. " outside if block") end
      if in_block.kind ~= "if" then
        fail(at, op .. " block cannot be attached to " .. in_block.kind .. " block")
      end
      if in_block.has_else then fail(at, op .. " after else") end
      if op == "else" then
        if suffix ~= "" then fail(at, "else takes no condition (use elseif)") end
        in_block.has_else = true
        body[#body + 1] = { kind = "else", line = at, file = file }
      else
        if suffix == "" then fail(at, op .. " missing condition") end
        body[#body + 1] = { kind = "elseif", arg = suffix, line = sline, file = file }
      end
    elseif BLOCK_OPS[op] then
      need()
      local node = { kind = op, arg = suffix, line = sline, file = file }
      if op == "block" then
        node.arg = unquote(suffix)
      elseif op == "for" then
        if match(suffix, "^[%a_][%w_]*%s*=") then
          node.numeric = true
        else
          local names, explist = match(suffix, "^(.-)%sin%s(.*)$")
          if not names or not match(names, "^[%w_,%s]+$") then
            fail(at, "for expects 'names in expression' or 'name = start, stop'")
          end
          node.names, node.explist = names, explist
        end
      end
      local inner = loop
      if op == "for" or op == "while" then
        inner = node
      elseif op == "apply" then
        inner = nil -- its body is a separate buffer: no break across it
      end
      body[#body + 1] = node
      return false, node, inner
    elseif op == "break" or op == "continue" then
      if not loop then fail(at, op .. " outside for/while loop") end
      if op == "continue" then loop.uses_continue = true end
      body[#body + 1] = { kind = op, loop = loop, line = at, file = file }
    elseif op == "set" then
      need()
      body[#body + 1] = { kind = "set", arg = suffix, names = set_names(suffix),
                          line = sline, file = file }
    elseif op == "raw" then
      need()
      body[#body + 1] = { kind = "expr", arg = suffix, raw = true, line = sline, file = file }
    elseif op == "include" or op == "extends" then
      need()
      local path = unquote(suffix)
      if path == "" then fail(at, op .. " missing file path") end
      local node = { kind = op, arg = path, line = at, file = file }
      if op == "extends" then
        if in_block then fail(at, "extends must be at the top level of a template") end
        if file.extends then fail(at, "only one extends per template") end
        file.extends = node
      end
      body[#body + 1] = node
    elseif op == "comment" then -- luacheck: ignore 542
      -- nothing
    elseif op == "autoescape" then
      need()
      if suffix == "nil" or suffix == "None" or suffix == "false" then
        file.autoescape = false
      elseif match(suffix, "^[%a_][%w_%.]*$") and not KEYWORDS[suffix] then
        file.autoescape = suffix
      else
        fail(at, "autoescape expects a function name or nil")
      end
    elseif op == "whitespace" then
      need()
      if not WHITESPACE_MODES[suffix] then
        fail(at, "invalid whitespace mode '" .. suffix .. "'")
      end
      ws = suffix
    else
      fail(at, "unknown directive '" .. op .. "'")
    end
    return false
  end

  local parse_body

  -- Reads nodes into a new body until EOF (in_block nil) or the
  -- {% end %} of in_block.
  parse_body = function(in_block, loop)
    local body = {}
    while true do
      -- The next "{{", "{%" or "{#"; of more than two "{" in a row, the
      -- innermost pair counts (as Tornado, for LaTeX and the like).
      local curly = pos
      while true do
        curly = find(src, "{", curly, true)
        if not curly or curly == len then
          if pos <= len then
            local s = sub(src, pos)
            add_text(body, s, line)
            line = line + newlines(s)
            pos = len + 1
          end
          if in_block then
            fail(in_block.line, "Missing {% end %} block for " .. in_block.kind)
          end
          return body
        end
        local c = byte(src, curly + 1)
        if c ~= 123 and c ~= 37 and c ~= 35 then -- { % #
          curly = curly + 1
        elseif c == 123 and byte(src, curly + 2) == 123 then
          curly = curly + 1
        else
          break
        end
      end
      if curly > pos then
        local s = sub(src, pos, curly - 1)
        add_text(body, s, line)
        line = line + newlines(s)
      end
      local brace = sub(src, curly, curly + 1)
      local at = line
      pos = curly + 2
      if byte(src, pos) == 33 then -- "!": the braces are text
        pos = pos + 1
        add_text(body, brace, at)
      elseif brace == "{#" then
        local e = find(src, "#}", pos, true)
        if not e then fail(at, "Missing end comment #}") end
        line = line + newlines(sub(src, pos, e - 1))
        pos = e + 2
      else
        local closer = brace == "{{" and "}}" or "%}"
        local e = find(src, closer, pos, true)
        if not e then
          fail(at, brace == "{{" and "Missing end expression }}" or "Missing end block %}")
        end
        local raw = sub(src, pos, e - 1)
        line = line + newlines(raw)
        pos = e + 2
        local contents, down = trim(raw)
        if brace == "{{" then
          if contents == "" then fail(at, "Empty expression") end
          body[#body + 1] = { kind = "expr", arg = contents, line = at + down, file = file }
        else
          if contents == "" then fail(at, "Empty block tag ({% %})") end
          local done, node, inner = directive(body, contents, at + down, in_block, loop)
          if done then return body end
          if node then node.body = parse_body(node, inner) end
        end
      end
    end
  end

  file.body = parse_body(nil, nil)
  return file
end

------------------------------------------------------------------------------
-- Code generation
--
-- The generated chunk, called once per render with its environment set to
-- the render's namespace, returns the render function:
--
--   1  local _tt_s, _tt_iter, _tt_concat, _tt_fns = ...
--   2  return function()
--   3  local _tt_buf, _tt_n = {}, 0
--   4  local _tt_ae1 = xhtml_escape; local x = x      (escapers, {% set %} names)
--   .. one statement per node, mapped to its file and line
--      return _tt_concat(_tt_buf, "", 1, _tt_n)
--      end

local HEADER_LINES = 4

local QUOTE = { ['"'] = '\\"', ["\\"] = "\\\\", ["\127"] = "\\127" }
for b = 0, 31 do QUOTE[char(b)] = format("\\%03d", b) end

-- A one-line Lua string literal (the line table relies on it).
local function quote(s)
  return '"' .. gsub(s, '[%c"\\]', QUOTE) .. '"'
end

-- Template code followed by a line break when a "--" in it could comment
-- out what the generator puts after it.
local function user(code)
  if find(code, "--", 1, true) then return code .. "\n" end
  return code
end

local function fail_at(node, msg)
  error(node.file.name .. ":" .. node.line .. ": " .. msg, 0)
end

local function emit_raw(g, code, file, line)
  local n = #g.code + 1
  g.code[n] = code
  local phys, map_file, map_line = g.phys, g.map_file, g.map_line
  for k = 0, newlines(code) do
    phys = phys + 1
    map_file[phys], map_line[phys] = file, line + k
  end
  g.phys = phys
end

local function flush_text(g)
  local n = #g.text
  if n == 0 then return end
  local first = g.text_node
  emit_raw(g, "_tt_n = _tt_n + 1; _tt_buf[_tt_n] = " .. quote(concat(g.text, "", 1, n)),
           first.file.name, first.line)
  for i = n, 1, -1 do g.text[i] = nil end
end

local function emit(g, code, node, line)
  flush_text(g)
  emit_raw(g, code, node.file.name, line or node.line)
end

-- The local holding the escaping function of `file` (nil: no escaping).
local function escaper(g, file)
  local ae = file.autoescape
  if ae == false then return nil end
  local var = g.ae[ae]
  if var then return var end
  var = "_tt_ae" .. (#g.ae_init + 1)
  local init = ae
  if type(ae) == "function" then
    g.fns[#g.fns + 1] = ae
    init = "_tt_fns[" .. #g.fns .. "]"
  end
  g.ae[ae] = var
  g.ae_vars[#g.ae_vars + 1] = var
  g.ae_init[#g.ae_init + 1] = init
  return var
end

-- The Template `node` (include / extends) names, through the loader.
local function get_template(g, node)
  local loader = g.loader
  if not loader then fail_at(node, node.kind .. " needs a template loader") end
  local get = loader._get or loader.load
  local t, err = get(loader, node.arg, node.file.name)
  if not t then fail_at(node, tostring(err)) end
  if type(t) ~= "table" or type(t.file) ~= "table" then
    fail_at(node, "the loader returned no gust.template for '" .. node.arg .. "'")
  end
  return t
end

-- As Tornado's find_named_blocks: later calls (children) replace earlier
-- ones (parents); blocks in included files count too.
local function find_blocks(g, body, seen)
  for i = 1, #body do
    local node = body[i]
    if node.kind == "block" then
      g.blocks[node.arg] = node
    elseif node.kind == "include" then
      local t = get_template(g, node)
      if not seen[t.name] then
        seen[t.name] = true
        find_blocks(g, t.file.body, seen)
      end
    end
    if node.body then find_blocks(g, node.body, seen) end
  end
end

local gen_body

local function gen_node(g, node)
  local kind = node.kind
  if kind == "text" then
    if #g.text == 0 then g.text_node = node end
    g.text[#g.text + 1] = node.value
  elseif kind == "expr" then
    local e = not node.raw and escaper(g, node.file)
    local code = "_tt_s(" .. user(node.arg) .. ")"
    if e then code = e .. "(" .. code .. ")" end
    emit(g, "_tt_n = _tt_n + 1; _tt_buf[_tt_n] = " .. code, node)
  elseif kind == "set" then
    local names = node.names
    if names then
      for i = 1, #names do
        local n = names[i]
        if sub(n, 1, 4) == "_tt_" then fail_at(node, "names starting with _tt_ are reserved") end
        if not g.hoisted[n] then
          g.hoisted[n] = true
          g.hoisted_list[#g.hoisted_list + 1] = n
        end
      end
    end
    emit(g, user(node.arg), node)
  elseif kind == "if" then
    emit(g, "if " .. user(node.arg) .. " then", node)
    gen_body(g, node.body)
    emit(g, "end", node, node.end_line)
  elseif kind == "elseif" then
    emit(g, "elseif " .. user(node.arg) .. " then", node)
  elseif kind == "else" then
    emit(g, "else", node)
  elseif kind == "for" or kind == "while" then
    if kind == "while" then
      emit(g, "while " .. user(node.arg) .. " do", node)
    elseif node.numeric then
      emit(g, "for " .. user(node.arg) .. " do", node)
    else
      emit(g, "for " .. node.names .. " in _tt_iter(" .. user(node.explist) .. ") do", node)
    end
    local label = false
    if node.uses_continue then
      g.labels = g.labels + 1
      label = "_tt_continue" .. g.labels
    end
    local loops = g.loops
    loops[#loops + 1] = { node = node, label = label }
    gen_body(g, node.body)
    loops[#loops] = nil
    if label then emit(g, "::" .. label .. "::", node, node.end_line) end
    emit(g, "end", node, node.end_line)
  elseif kind == "break" then
    emit(g, "do break end", node)
  elseif kind == "continue" then
    local label
    for i = #g.loops, 1, -1 do
      if g.loops[i].node == node.loop then label = g.loops[i].label break end
    end
    if not label then fail_at(node, "continue outside for/while loop") end
    emit(g, "do goto " .. label .. " end", node)
  elseif kind == "apply" then
    emit(g, "do local _tt_ob, _tt_on = _tt_buf, _tt_n; _tt_buf, _tt_n = {}, 0", node)
    gen_body(g, node.body)
    emit(g, "local _tt_r = _tt_concat(_tt_buf, \"\", 1, _tt_n); "
        .. "_tt_buf, _tt_n = _tt_ob, _tt_on + 1", node, node.end_line)
    emit(g, "_tt_buf[_tt_n] = _tt_s((" .. user(node.arg) .. ")(_tt_r)) end", node)
  elseif kind == "block" then
    local chosen = g.blocks[node.arg] or node
    local fname = chosen.file.name
    local mark = not g.active[fname]
    if mark then g.active[fname] = true end
    gen_body(g, chosen.body)
    if mark then g.active[fname] = nil end
  elseif kind == "include" then
    local t = get_template(g, node)
    if g.active[t.name] then fail_at(node, "recursive include of '" .. t.name .. "'") end
    g.active[t.name] = true
    gen_body(g, t.file.body)
    g.active[t.name] = nil
  end
  -- extends: handled by compile(); the child's other content is unused
end

gen_body = function(g, body)
  for i = 1, #body do gen_node(g, body[i]) end
end

-- Returns the chunk's source, its line table (file names and lines) and
-- the functions it reads through _tt_fns.
local function generate_source(tpl)
  local g = {
    loader = tpl.loader, code = {}, phys = HEADER_LINES, map_file = {}, map_line = {},
    text = {}, ae = {}, ae_vars = {}, ae_init = {}, fns = {}, hoisted = {}, hoisted_list = {},
    blocks = {}, active = {}, loops = {}, labels = 0,
  }

  -- The chain of ancestors, child first.
  local chain, seen, f = { tpl.file }, { [tpl.name] = true }, tpl.file
  while f.extends do
    local node = f.extends
    local parent = get_template(g, node)
    if seen[parent.name] then fail_at(node, "recursive extends of '" .. parent.name .. "'") end
    seen[parent.name] = true
    chain[#chain + 1] = parent.file
    f = parent.file
  end
  for i = #chain, 1, -1 do find_blocks(g, chain[i].body, {}) end

  local root = chain[#chain]
  g.active[root.name] = true
  gen_body(g, root.body)
  flush_text(g)
  if #g.code == 0 then emit_raw(g, "", tpl.name, 1) end

  local locals, inits = {}, {}
  for i = 1, #g.ae_vars do
    locals[#locals + 1], inits[#inits + 1] = g.ae_vars[i], g.ae_init[i]
  end
  for i = 1, #g.hoisted_list do
    local n = g.hoisted_list[i]
    locals[#locals + 1], inits[#inits + 1] = n, n
  end
  if #locals > 180 then
    error(tpl.name .. ":1: too many {% set %} names (" .. #locals .. ")", 0)
  end
  local prologue = #locals > 0
    and "local " .. concat(locals, ", ") .. " = " .. concat(inits, ", ") or ""

  local map_file, map_line = g.map_file, g.map_line
  for i = 1, HEADER_LINES do map_file[i], map_line[i] = tpl.name, 1 end
  local last = g.phys
  map_file[last + 1], map_line[last + 1] = map_file[last] or tpl.name, map_line[last] or 1
  map_file[last + 2], map_line[last + 2] = map_file[last + 1], map_line[last + 1]

  local source = concat({
    "local _tt_s, _tt_iter, _tt_concat, _tt_fns = ...",
    "return function()",
    "local _tt_buf, _tt_n = {}, 0",
    prologue,
    concat(g.code, "\n"),
    "return _tt_concat(_tt_buf, \"\", 1, _tt_n)",
    "end",
  }, "\n")
  return source, map_file, map_line, g.fns
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
