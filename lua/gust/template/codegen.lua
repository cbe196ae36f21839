-- gust.template.codegen: a parsed template (gust.template.parser) -> the
-- source of one Lua function that renders it, with a line table that maps
-- the generated code back to template files and lines for error messages.
-- Templates it includes or extends come from the template's loader.

local _M = { _VERSION = "0.1.0" }

local type, tostring, error = type, tostring, error
local char, sub, find, gsub, format = string.char, string.sub, string.find, string.gsub,
  string.format
local concat = table.concat

local parser = require "gust.template.parser"

local newlines = parser.newlines

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

_M.generate_source = generate_source

return _M
